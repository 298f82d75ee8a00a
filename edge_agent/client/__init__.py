"""Talking to a board's broker from outside the agent: submitting prompts and reading statuses."""
