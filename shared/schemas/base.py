"""Base classes for Postmark-shaped JSON (PascalCase keys)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

NUL_REFUSED = "NUL characters are not allowed"
UNSTORABLE_REFUSED = f"{NUL_REFUSED}, nor lone surrogates (text must be valid Unicode)"
# What PostgreSQL text (UTF-8) cannot hold: NUL, and a UTF-16 surrogate that is not part of a pair
# (JSON's "\ud800", bytes decoded with surrogateescape): asyncpg's encoder fails on it at write time.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> bool:
    """`text` holds a NUL or a lone surrogate: it cannot be stored as PostgreSQL text."""
    if text.isascii():
        return "\x00" in text
    return _UNSTORABLE.search(text) is not None


def storable(text: str) -> str:
    """`text` with each NUL or lone surrogate replaced by U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", text) if unstorable(text) else text


def unstorable_field(value: Any, path: str = "") -> str | None:
    """The path (`Subject`, `Attachments.0.Name`, `Metadata`) of the first text inside `value` that cannot be
    stored, keys included (a bad key names the object holding it); None when all can. Iterative."""
    stack: list[tuple[str, Any]] = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, str):
            if unstorable(item):
                return where
        elif isinstance(item, dict):
            if any(isinstance(key, str) and unstorable(key) for key in item):
                return where
            stack.extend((f"{where}.{key}" if where else str(key), inner) for key, inner in reversed(item.items()))
        elif isinstance(item, list | tuple):
            stack.extend((f"{where}.{i}" if where else str(i), inner) for i, inner in reversed(list(enumerate(item))))
    return None


def contains_nul(value: Any) -> bool:
    """A NUL or a lone surrogate in any string inside `value` (keys included): text PostgreSQL cannot hold."""
    return unstorable_field(value) is not None


class WireModel(BaseModel):
    """A request body: unknown keys are ignored, as official clients send extra ones.

    PostgreSQL text cannot hold NUL or a lone surrogate, so a field carrying one is refused here, at the
    edge (422, ErrorCode 403 naming the field); a model whose endpoint reports it in its own words sets
    `refuse_nul = False`.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    refuse_nul: ClassVar[bool] = True

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if cls.refuse_nul and contains_nul(value):
            raise ValueError(UNSTORABLE_REFUSED)
        return value


class WireResponse(BaseModel):
    """A response body."""

    model_config = ConfigDict(populate_by_name=True)


class ErrorResponse(WireResponse):
    """Postmark's error envelope."""

    ErrorCode: int
    Message: str


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, as Postmark's newer endpoints answer."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
