"""Sender signatures: single From addresses (account token)."""
