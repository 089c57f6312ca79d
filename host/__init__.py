"""FIXAR: an open, verifiable fixed-point DDPG training accelerator."""

__version__ = "0.1.0"
