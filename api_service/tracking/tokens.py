"""Tracking tokens: what an open pixel, a tracked link or an unsubscribe URL stands for, sealed
with the sending server's tracking secret.

A token is `base64url(message id ‖ AES-SIV(key, payload; associated data = message id))`.
AES-SIV (RFC 5297) both encrypts and authenticates: a token cannot be forged, altered, moved to
another message or read (the recipient and the link are not visible in the URL); the message id
in front is a random UUID, needed to find the server whose key opens the rest. It is
deterministic, so one recipient's copy gets the same URLs on every delivery attempt.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared.constants import ClickLocation

KEY_INFO = b"postgate tracking token v1"
ID_BYTES = 16
SIV_BYTES = 16
SEPARATOR = b"\x00"


class Kind(Enum):
    OPEN = b"o"
    CLICK = b"c"
    UNSUBSCRIBE = b"u"


@dataclass(frozen=True, slots=True)
class Payload:
    """What a token says: which recipient of which message, and for a click, which link where."""

    kind: Kind
    message_id: uuid.UUID
    recipient: str
    location: ClickLocation | None = None
    url: str = ""


@lru_cache(maxsize=1024)
def _cipher(secret: str) -> AESSIV:
    key = HKDF(algorithm=hashes.SHA256(), length=64, salt=None, info=KEY_INFO).derive(secret.encode())
    return AESSIV(key)


def _encode(payload: Payload) -> bytes:
    body = payload.kind.value
    if payload.kind is Kind.CLICK:
        body += (b"H" if payload.location is ClickLocation.HTML else b"T") + payload.recipient.encode() + SEPARATOR + payload.url.encode()
    else:
        body += payload.recipient.encode()
    return body


def _decode(message_id: uuid.UUID, body: bytes) -> Payload | None:
    kind = next((k for k in Kind if body[:1] == k.value), None)
    try:
        if kind is Kind.CLICK:
            location = ClickLocation.HTML if body[1:2] == b"H" else ClickLocation.TEXT
            recipient, sep, url = body[2:].partition(SEPARATOR)
            if not sep:
                return None
            return Payload(kind, message_id, recipient.decode(), location, url.decode())
        if kind is not None:
            return Payload(kind, message_id, body[1:].decode())
    except UnicodeDecodeError:
        return None
    return None


def seal(secret: str, payload: Payload) -> str:
    """The URL-safe token for `payload` (base64url, no padding: case matters)."""
    sealed = _cipher(secret).encrypt(_encode(payload), [payload.message_id.bytes])
    return base64.urlsafe_b64encode(payload.message_id.bytes + sealed).rstrip(b"=").decode("ascii")


def _raw(token: str) -> bytes | None:
    if not token or len(token) > 4096 or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) > ID_BYTES + SIV_BYTES else None


def message_id_of(token: str) -> uuid.UUID | None:
    """The message a token claims to belong to (unverified: only to find its server's key)."""
    raw = _raw(token)
    return uuid.UUID(bytes=raw[:ID_BYTES]) if raw else None


def unseal(secret: str, token: str) -> Payload | None:
    """The token's payload, or None for anything not sealed with this secret."""
    raw = _raw(token)
    if raw is None:
        return None
    message_id = uuid.UUID(bytes=raw[:ID_BYTES])
    try:
        body = _cipher(secret).decrypt(raw[ID_BYTES:], [raw[:ID_BYTES]])
    except InvalidTag:
        return None
    return _decode(message_id, body)
