"""Inbound mail: received messages parsed into Postmark's inbound webhook payload."""
