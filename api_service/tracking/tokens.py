"""Tracking tokens: what an open pixel, a tracked link or an unsubscribe URL stands for, sealed
with the sending server's tracking secret.

A token is `base64url(message id ‖ AES-SIV(key, payload; associated data = message id))`.
AES-SIV (RFC 5297) both encrypts and authenticates: a token cannot be forged, altered, moved to
another message or read (the recipient and the link are not visible in the URL); the message id
in front is a random UUID, needed to find the server whose key opens the rest. It is
deterministic, so one recipient's copy gets the same URLs on every delivery attempt.

Version 2 (what delivery writes now) outlives the message row: `base64url(0x02 ‖ server id ‖
message id ‖ AES-SIV(key, stream ‖ payload; associated data = everything before it))`. The key is
found from the server id, and the stream is sealed in, so a link still redirects and an
unsubscribe still works after retention or a data removal deleted the message (nothing is then
recorded). Version 1 tokens (no prefix, message id first) are still opened, through their message.
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
V2 = b"\x02"
V2_PREFIX_BYTES = 1 + 8 + ID_BYTES  # version, server id, message id
MAX_SERVER_ID = 2**63 - 1
MAX_TOKEN_CHARS = 4096  # the public routes refuse longer ones; a link whose token would be longer stays untracked


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
    server_id: int | None = None
    """Set in version 2 tokens (with `stream`): what they are opened by, without the message row."""
    stream: str = ""


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


def _decode(message_id: uuid.UUID, body: bytes, server_id: int | None = None) -> Payload | None:
    stream = ""
    if server_id is not None:
        name, sep, body = body.partition(SEPARATOR)
        if not sep:
            return None
        stream = name.decode("utf-8", "replace")
    kind = next((k for k in Kind if body[:1] == k.value), None)
    try:
        if kind is Kind.CLICK:
            location = ClickLocation.HTML if body[1:2] == b"H" else ClickLocation.TEXT
            recipient, sep, url = body[2:].partition(SEPARATOR)
            if not sep:
                return None
            return Payload(kind, message_id, recipient.decode(), location, url.decode(), server_id, stream)
        if kind is not None:
            return Payload(kind, message_id, body[1:].decode(), server_id=server_id, stream=stream)
    except UnicodeDecodeError:
        return None
    return None


def seal(secret: str, payload: Payload) -> str:
    """The URL-safe token for `payload` (base64url, no padding: case matters); version 2 when the
    payload names its server."""
    if payload.server_id is None:
        sealed = _cipher(secret).encrypt(_encode(payload), [payload.message_id.bytes])
        return base64.urlsafe_b64encode(payload.message_id.bytes + sealed).rstrip(b"=").decode("ascii")
    prefix = V2 + payload.server_id.to_bytes(8, "big") + payload.message_id.bytes
    sealed = _cipher(secret).encrypt(payload.stream.encode() + SEPARATOR + _encode(payload), [prefix])
    return base64.urlsafe_b64encode(prefix + sealed).rstrip(b"=").decode("ascii")


def server_id_of(token: str) -> int | None:
    """The server a version 2 token claims to belong to (unverified: only to find its key)."""
    raw = _raw(token)
    if raw is None or raw[:1] != V2 or len(raw) <= V2_PREFIX_BYTES + SIV_BYTES:
        return None
    server_id = int.from_bytes(raw[1:9], "big")
    # A forged id past PostgreSQL's bigint would fail the look-up itself (a 500): no server has it.
    return server_id if 0 < server_id <= MAX_SERVER_ID else None


def unseal_v2(secret: str, token: str) -> Payload | None:
    """A version 2 token's payload, or None for anything not sealed so with this secret."""
    raw = _raw(token)
    if raw is None or raw[:1] != V2 or len(raw) <= V2_PREFIX_BYTES + SIV_BYTES:
        return None
    prefix = raw[:V2_PREFIX_BYTES]
    try:
        body = _cipher(secret).decrypt(raw[V2_PREFIX_BYTES:], [prefix])
    except InvalidTag:
        return None
    return _decode(uuid.UUID(bytes=prefix[9:]), body, server_id=int.from_bytes(prefix[1:9], "big"))


def _raw(token: str) -> bytes | None:
    if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
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
