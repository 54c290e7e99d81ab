"""The internal hop for mail sent to return-path addresses (bounces and complaints)."""

from __future__ import annotations

from pydantic import Field

from shared.schemas.base import WireModel, WireResponse

INBOUND_BOUNCE_PATH = "/internal/inbound/bounce"


class InboundBounce(WireModel):
    RcptTo: list[str] = Field(description="The return-path addresses the report was sent to")
    RawMessage: str = Field(description="The report, base64-encoded")


class InboundBounceResult(WireResponse):
    Matched: int = Field(description="Bounces or complaints recorded")
