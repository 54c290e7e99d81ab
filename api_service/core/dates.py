"""Query dates (Postmark reads a date without an offset as US Eastern time) and send times (which need one)."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from api_service.errors import InvalidEmailRequest, PostmarkError

EASTERN = ZoneInfo("America/New_York")


def parse_query_date(value: str | None, *, error_code: int, end_of_day: bool = False) -> datetime | None:
    """`2024-01-31` or `2024-01-31T10:00:00[+01:00]`; a bare `todate` covers its whole day."""
    if value is None or not value.strip():
        return None
    text = value.strip().replace("Z", "+00:00").replace(" ", "+")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PostmarkError(error_code, f"'{value}' is not a valid date (use YYYY-MM-DD or ISO 8601).") from None
    date_only = len(text) == 10
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=EASTERN)
    if date_only and end_of_day:
        parsed = datetime.combine(parsed.date(), time.min, EASTERN) + timedelta(days=1)
    return parsed


def parse_send_at(value: str, *, field_name: str = "SendAt") -> datetime:
    """`SendAt` / `X-PM-Send-At`: ISO 8601 with an offset (`Z` or `±hh:mm`). A time without one is refused rather
    than guessed (US Eastern as Postmark reads query dates? the server's zone?): a wrong guess sends hours off."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text) if 0 < len(text) <= 64 else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise InvalidEmailRequest(f"'{field_name}' must be an ISO 8601 date and time with an offset, such as 2030-01-02T09:00:00Z.")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidEmailRequest(f"'{field_name}' needs an offset (Z or +hh:mm): '{text[:64]}' could be any time zone.")
    return parsed
