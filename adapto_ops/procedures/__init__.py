"""Procedures: the runbook's sequences of steps, called by the thin CLI."""
