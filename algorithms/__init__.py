"""RLlib ``Algorithm`` / ``Learner`` classes, one folder per algorithm (installed as ``pairgrpo_rllib.algorithms``).

``common/`` holds what the GRPO family shares (config, driver step, learner, module); each algorithm
folder overrides exactly the hook that differs. ``ppo/`` adapts RLlib's own PPO to the experiment
YAML. The losses live in the math layer (``pairgrpo_rllib.core``); ``registry`` names them all,
``stages`` the LLM side's preparation stages (tiny model, task, SFT, reward model).
"""
