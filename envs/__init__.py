"""Group env runners (MuJoCo) and rollout actors (LLM), installed as ``pairgrpo_rllib.envs``.

Filled by issue 3 (MuJoCo) and the LLM issue.
"""
