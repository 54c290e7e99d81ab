"""Base classes for Postmark-shaped JSON (PascalCase keys)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A request body: unknown keys are ignored, as official clients send extra ones."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)


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
