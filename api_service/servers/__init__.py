"""Servers: `/server` (server token) and `/servers` (account token)."""
