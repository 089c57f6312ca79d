"""Per-layer mixed precision found by reinforcement learning, after HAQ
(CVPR 2019), with the lane column's pass count as the hardware feedback
(docs/haq.md). ``python -m fixar.haq``."""
