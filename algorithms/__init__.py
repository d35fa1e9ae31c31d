"""RLlib ``Algorithm`` / ``Learner`` classes, one folder per algorithm (installed as ``pairgrpo_rllib.algorithms``).

Filled by issue 3; the losses they call live in the math layer (``pairgrpo_rllib.losses`` etc.).
"""
