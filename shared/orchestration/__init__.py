"""Orchestrators (yield only) and the activity handlers they call."""
