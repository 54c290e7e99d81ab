"""Suppressions of a message stream."""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse


class SuppressionAddress(WireModel):
    EmailAddress: str | None = None
    LiftSpamComplaint: bool | None = Field(
        default=None,
        description="Beyond Postmark, on /delete: also lift a SpamComplaint suppression (check with the recipient first)",
    )


class SuppressionChange(WireModel):
    """Up to 50 addresses to suppress or reactivate."""

    Suppressions: list[SuppressionAddress] | None = None

    model_config = WireModel.model_config | {
        "json_schema_extra": {"examples": [{"Suppressions": [{"EmailAddress": "someone@example.com"}]}]}
    }


class SuppressionResult(WireResponse):
    EmailAddress: str
    Status: str
    Message: str | None


class SuppressionResults(WireResponse):
    Suppressions: list[SuppressionResult]


class Suppression(WireResponse):
    EmailAddress: str
    SuppressionReason: str
    Origin: str
    CreatedAt: str


class SuppressionDump(WireResponse):
    Suppressions: list[Suppression]
