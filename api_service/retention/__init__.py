"""Retention: the worker deletes what is older than each server's RetentionDays, in small batches."""
