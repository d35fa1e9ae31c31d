"""RLlib's PPO as a baseline ("Proximal Policy Optimization Algorithms"), read from the same experiment YAML."""
