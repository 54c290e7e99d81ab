"""Sending: `/email` and `/email/batch`, validation, MIME building and queueing."""
