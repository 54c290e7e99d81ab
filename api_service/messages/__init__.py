"""Outbound message activity: list, details and raw dump."""
