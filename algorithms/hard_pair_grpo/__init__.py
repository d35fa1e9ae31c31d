"""Hard-Pair-GRPO (seed 000 section 4.2)."""
