"""Postgate's REST API: Postmark-compatible sending, servers, senders, messages and bounces."""
