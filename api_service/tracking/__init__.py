"""Open and click tracking and one-click unsubscribe: the sealed URLs written into each
recipient's copy, the public endpoints that receive them, and the opens and clicks API."""
