"""API outcome → SMTP reply, in one place.

2xx → 250. A 4xx is the client's fault and will not change on retry → 5xx, except 429: the
server is over its rate limit → 451 4.7.1 with the wait, so the client keeps the message and
retries later. A 5xx, a timeout or a connection error says nothing about the message → 451, so the
client keeps it and retries. On the MX listener a 401 is the operator's misconfigured
ACCOUNT_TOKEN, not the sender's fault, and a 429 the internal routes' own limit → 451 too, so no
mail is lost while it is fixed.
"""

from __future__ import annotations

import math

from shared.constants import ErrorCode

from smtp_service.api_client import InboundOutcome, RecipientOutcome, SubmitOutcome


def submission_reply(outcome: SubmitOutcome) -> str:
    if outcome.status == 200 and outcome.result is not None:
        return f"250 2.0.0 Ok: queued as {outcome.result.MessageID}"
    if outcome.status == 429:
        return f"451 4.7.1 Rate limit exceeded for this server, try again in {math.ceil(outcome.retry_after or 1)} seconds"
    if outcome.status == 401:
        return "535 5.7.8 Authentication credentials are no longer valid"
    if outcome.error_code == ErrorCode.SMTP_DISABLED:
        return "550 5.7.1 SMTP API access is not enabled for this server"
    if outcome.status == 413:
        return "552 5.3.4 Message too big"
    if 400 <= outcome.status < 500:
        text = " ".join(outcome.message.split())[:400] or "Message refused"
        return f"554 5.6.0 {text}"
    return "451 4.3.0 Temporary failure storing the message, please retry"


def recipient_reply(outcome: RecipientOutcome, *, domain: str) -> str:
    """The RCPT reply of the MX listener for an address that is not on the return path."""
    if outcome is RecipientOutcome.ACCEPTED:
        return "250 2.1.5 Ok"
    if outcome is RecipientOutcome.UNKNOWN:
        return "550 5.1.1 No such inbound address"
    if outcome is RecipientOutcome.FOREIGN:
        return f"550 5.7.1 Relaying denied: {domain[:200]} is not an inbound domain of this server"
    return "451 4.3.0 Temporary failure checking the recipient, please retry"


def inbound_reply(outcome: InboundOutcome) -> str:
    """The DATA reply of the MX listener for inbound mail: 250 only once the API has stored it."""
    if outcome.status == 200 and outcome.message_ids:
        return f"250 2.0.0 Ok: queued as {' '.join(outcome.message_ids)[:400]}"
    if outcome.status == 413:
        return "552 5.3.4 Message too big"
    if outcome.status in (400, 422):
        text = " ".join(outcome.message.split())[:400] or "Message refused"
        return f"550 5.1.1 {text}"
    if 400 <= outcome.status < 500 and outcome.status not in (401, 429):
        text = " ".join(outcome.message.split())[:400] or "Message refused"
        return f"554 5.6.0 {text}"
    return "451 4.3.0 Temporary failure storing the message, please retry"


def bounce_report_reply(status: int) -> str:
    """The DATA reply of the return-path listener: a 401 (misconfigured token) or 429 (the internal
    routes' limit) is ours, not the reporter's: 451, so the report comes again."""
    if status == 200:
        return "250 2.0.0 Ok: report recorded"
    if 400 <= status < 500 and status not in (401, 429):
        return "554 5.6.0 Report refused"
    return "451 4.3.0 Temporary failure storing the report, please retry"
