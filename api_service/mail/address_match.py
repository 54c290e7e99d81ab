"""One whole email address in text, never inside a longer one (`bob@example.com` is not found in
`jimbob@example.com` nor in `bob@example.com.au`), case-insensitively: as a Python pattern and as a
PostgreSQL regular expression (for `~*` and `regexp_replace(…, 'gi')`)."""

from __future__ import annotations

import re

# Characters that may come before the address inside a longer local part, and after it inside a longer domain.
LOCAL_PART_CHARS = "A-Za-z0-9!#$%&'*+/=?^_`{|}~.-"
_AFTER = r"(?![A-Za-z0-9-])(?!\.[A-Za-z0-9])"


def address_pattern(address: str) -> re.Pattern[bytes]:
    before = f"(?<![{LOCAL_PART_CHARS}])".encode()
    return re.compile(before + re.escape(address.encode()) + _AFTER.encode(), re.IGNORECASE)


def postgres_pattern(address: str) -> str:
    """The same for PostgreSQL (advanced regular expressions): every non-alphanumeric character escaped."""
    escaped = "".join(c if c.isalnum() else "\\" + c for c in address)
    return f"(?<![{LOCAL_PART_CHARS}]){escaped}{_AFTER}"
