"""Intake: turn Service Bus messages, Event Grid events and HTTP calls into exactly one authorised rollout."""
