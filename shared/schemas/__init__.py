"""Pydantic schemas of Postmark's wire format, shared by api_service and smtp_service."""
