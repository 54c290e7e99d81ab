"""Per-stream suppression lists: dump, suppress, reactivate."""
