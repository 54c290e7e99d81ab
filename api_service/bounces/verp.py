"""Per-message, per-recipient return paths (VERP), so that a bounce mailed back names its message
and can only have come from where the mail went.

`pgb+<message id hex>-<mac>@RETURN_PATH_DOMAIN`, the mac being a truncated HMAC-SHA256 of the
message id and the recipient under the installation's signing key (VERP_SECRET): a Message-ID
seen in a reply's References is not enough to build it. 80 bits of mac, each guess one SMTP
transaction to the MX listener, keep the local part within 64 characters (RFC 5321 §4.5.3.1.1).
Unsigned `pgb+<hex>@` paths were written before; see `returns_to`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import datetime

PATTERN = re.compile(r"^pgb\+([0-9a-f]{32})(?:-([0-9a-f]{20}))?@(.+)$", re.IGNORECASE)
MAC_HEX = 20
KEY_INFO = b"postgate return path v2"


@dataclass(frozen=True, slots=True)
class ReturnPath:
    """A return path as read from a report's RCPT TO; `mac` is "" in an unsigned (old) one."""

    message_id: uuid.UUID
    mac: str


def _mac(secret: str, message_id: uuid.UUID, recipient: str) -> str:
    key = hmac.new(secret.encode(), KEY_INFO, hashlib.sha256).digest()
    return hmac.new(key, message_id.bytes + recipient.strip().lower().encode(), hashlib.sha256).hexdigest()[:MAC_HEX]


def return_path(*, message_id: uuid.UUID, recipient: str, domain: str, secret: str) -> str:
    """The envelope sender of `message_id`'s copy to `recipient`."""
    return f"pgb+{message_id.hex}-{_mac(secret, message_id, recipient)}@{domain}"


def parse_return_path(address: str) -> ReturnPath | None:
    """The message id (and mac) in a VERP address, or None."""
    match = PATTERN.match(address.strip().strip("<>"))
    return ReturnPath(uuid.UUID(match.group(1)), (match.group(2) or "").lower()) if match else None


def returns_to(path: ReturnPath, *, recipient: str, keys: list[str], accepted_at: datetime, legacy_before: datetime | None) -> bool:
    """Was `path` the return path of the copy to `recipient`? Signed paths are checked against
    every key still accepted (VERP_SECRET, then VERP_SECRET_PREVIOUS); an unsigned one counts
    only for a message accepted before VERP_LEGACY_BEFORE (mail in flight at the upgrade)."""
    if not path.mac:
        return legacy_before is not None and accepted_at < legacy_before
    return any(hmac.compare_digest(_mac(key, path.message_id, recipient), path.mac) for key in keys)
