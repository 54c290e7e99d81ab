"""Postmark templates: the Mustachio engine and CSS inlining, as pure functions."""
