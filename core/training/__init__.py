"""Training: the network in torch, the one training loop, one shape converted, and the size modes (target error, byte budget)."""
