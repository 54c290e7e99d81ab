"""Delivery: drains the queue to a relay or the MX, one attempt at a time, and records each outcome."""
