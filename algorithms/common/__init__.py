"""Pieces shared by the GRPO-family algorithms: config, policy module, learner, training step."""
