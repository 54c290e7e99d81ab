"""Bounces: list, get, dump, activate and delivery statistics."""
