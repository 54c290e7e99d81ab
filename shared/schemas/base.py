"""Base classes for Postmark-shaped JSON (PascalCase keys)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator

NUL_REFUSED = "NUL characters are not allowed"


def contains_nul(value: Any) -> bool:
    """A NUL in any string inside `value` (keys included); iterative, however deep it nests."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False


class WireModel(BaseModel):
    """A request body: unknown keys are ignored, as official clients send extra ones.

    PostgreSQL text cannot hold NUL, so a field carrying one is refused here, at the edge; a model
    whose endpoint reports it in its own words sets `refuse_nul = False`.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    refuse_nul: ClassVar[bool] = True

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_nul(cls, value: Any) -> Any:
        if cls.refuse_nul and contains_nul(value):
            raise ValueError(NUL_REFUSED)
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
