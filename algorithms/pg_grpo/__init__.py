"""PG-GRPO ("Preference-Guided GRPO")."""
