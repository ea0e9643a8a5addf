"""`adapto health`: the runbook's checks, from where adapto runs and on every host."""
