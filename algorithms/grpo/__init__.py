"""GRPO (DeepSeekMath; seed 004's object of study)."""
