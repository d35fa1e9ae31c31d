"""Soft-Pair-GRPO (seed 000 section 4.1)."""
