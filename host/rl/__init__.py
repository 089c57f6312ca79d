"""The host side of training: environments, replay buffer, the DDPG loop and
the accelerator backends it drives (issue 5; the golden, rtl and xrt
training backends need the on-chip training issue first)."""
