"""The API outcome → SMTP reply mapping of the MX and return-path listeners: what is our fault
(a misconfigured token, the internal routes' own limit, an outage) keeps the mail coming (451);
only what the sender got wrong is refused for good."""

from __future__ import annotations

import pytest

from smtp_service.api_client import InboundOutcome
from smtp_service.replies import bounce_report_reply, inbound_reply


@pytest.mark.parametrize(
    ("status", "reply"),
    [(200, "250 2.0.0"), (422, "554 5.6.0"), (401, "451 4.3.0"), (429, "451 4.3.0"), (500, "451 4.3.0"), (0, "451 4.3.0")],
)
def test_bounce_report_reply(status: int, reply: str) -> None:
    assert bounce_report_reply(status).startswith(reply)


@pytest.mark.parametrize(
    ("status", "reply"),
    [(413, "552 5.3.4"), (422, "550 5.1.1"), (403, "554 5.6.0"), (401, "451 4.3.0"), (429, "451 4.3.0"), (503, "451 4.3.0")],
)
def test_inbound_reply(status: int, reply: str) -> None:
    assert inbound_reply(InboundOutcome(status=status, message="no")).startswith(reply)
