"""GRPO (DeepSeekMath; the object of "What is the Alignment Objective of GRPO?")."""
