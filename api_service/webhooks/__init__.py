"""Webhooks: the /webhooks API, Postmark's payloads, and the durable outbox they go through."""
