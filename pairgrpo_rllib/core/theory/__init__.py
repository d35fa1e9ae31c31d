"""The stationary-policy check (GRPO-objective): closed forms reproduced by training a tabular policy."""
