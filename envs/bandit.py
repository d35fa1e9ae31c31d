"""The binary question of ``pairgrpo theory`` as a gymnasium environment.

One state (observation ``[1.0]``), two actions: 0 = answer ``a`` (reward 1, preferred) and
1 = answer ``b`` (reward 0); every episode is one step. With a linear policy head on the constant
observation the policy is a softmax over two logits, the tabular policy of GRPO-objective, so that
``pairgrpo theory --backend rllib`` trains the real RLlib learners on the setting of the closed forms.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

ENV_ID = "pairgrpo/BinaryQuestion-v0"


class BinaryQuestionEnv(gym.Env):
    metadata = {"render_modes": []}

    def __init__(self, reward_a: float = 1.0, reward_b: float = 0.0):
        self.observation_space = gym.spaces.Box(low=1.0, high=1.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.rewards = (float(reward_a), float(reward_b))

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.ones(1, dtype=np.float32), {}

    def step(self, action):
        return np.ones(1, dtype=np.float32), self.rewards[int(action)], True, False, {}


def register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point=BinaryQuestionEnv, max_episode_steps=1)
