"""Postgate's SMTP gateway: another entry point to the API for applications that only speak SMTP."""
