"""Per-message return paths (VERP), so that a bounce mailed back names its message.

The recipient is read from the bounce itself (the DSN's Final-Recipient), so one envelope sender
per message lets all its recipients on a domain share one SMTP transaction.
"""

from __future__ import annotations

import re
import uuid

PATTERN = re.compile(r"^pgb\+([0-9a-f]{32})@(.+)$", re.IGNORECASE)


def return_path(*, message_id: uuid.UUID, domain: str) -> str:
    return f"pgb+{message_id.hex}@{domain}"


def parse_return_path(address: str) -> uuid.UUID | None:
    """The message id in a VERP address, or None."""
    match = PATTERN.match(address.strip().strip("<>"))
    return uuid.UUID(match.group(1)) if match else None
