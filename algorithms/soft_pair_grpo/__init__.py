"""Soft-Pair-GRPO ("A Unified Pair-GRPO Family", arXiv 2605.06375, §4.1)."""
