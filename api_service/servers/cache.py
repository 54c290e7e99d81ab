"""A one-second cache of token → sending settings for the send path.

Looking the token up is a round trip and an ORM load per message; a burst of sends with one
token needs it once a second. Edits and deletes clear this process' cache at once; a revoked token
clears every process' cache at once (`token_service.revocations_heard`); another worker process may
use old settings for up to `TTL_SECONDS` (a deleted server's send then fails with
401, see email.service). SMTP submissions do not use it: they read the server's current row, so
SMTP turned off counts from the next message.
"""

from __future__ import annotations

from dataclasses import dataclass

from api_service.core.cache import TtlCache
from shared.constants import TokenScope

TTL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ServerSnapshot:
    """The settings of a server that sending reads."""

    id: int
    track_opens: bool
    track_links: str
    delivery_type: str
    smtp_api_activated: bool
    token_id: int = 0
    token_name: str = ""
    scope: TokenScope = TokenScope.FULL


# Token digest → its server's sending settings.
SERVER_SNAPSHOTS: TtlCache[ServerSnapshot] = TtlCache(TTL_SECONDS)
