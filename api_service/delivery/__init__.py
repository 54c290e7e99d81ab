"""The delivery worker: drains the queue to a relay or MX, records outcomes, posts webhooks."""
