"""Query dates: Postmark reads a date without an offset as US Eastern time."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from api_service.errors import PostmarkError

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
