"""PG-GRPO (seed 003)."""
