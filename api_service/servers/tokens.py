"""Server and account tokens: kept only as SHA-256 digests."""

from __future__ import annotations

import hashlib
import hmac
import uuid


def token_digest(token: str) -> str:
    """Header values are case-insensitive in Postmark, so the digest is of the lower-cased token."""
    return hashlib.sha256(token.strip().lower().encode()).hexdigest()


def same_token(given: str, expected: str) -> bool:
    return bool(given) and bool(expected) and hmac.compare_digest(token_digest(given), token_digest(expected))


def new_token() -> str:
    return str(uuid.uuid4())
