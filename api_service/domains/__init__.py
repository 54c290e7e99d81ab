"""Sending domains: every address on a domain may send (account token)."""
