"""The stationary-policy check (seed 004): closed forms reproduced by training a tabular policy."""
