"""Postgate's wire contract: the pydantic schemas and constants both services use."""
