"""An SMTP reply → what to do with the recipient: pure function, table-tested."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from shared.constants import BounceType

ENHANCED = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


class Outcome(Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    BOUNCE = "bounce"


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    bounce_type: BounceType | None = None


# Enhanced status codes (RFC 3463) that say more than the basic code.
BY_ENHANCED: dict[tuple[int, int], BounceType] = {
    (1, 1): BounceType.HARD_BOUNCE,  # bad destination mailbox
    (1, 2): BounceType.HARD_BOUNCE,  # bad destination system
    (1, 3): BounceType.BAD_EMAIL_ADDRESS,  # bad mailbox syntax
    (1, 6): BounceType.ADDRESS_CHANGE,  # mailbox has moved
    (1, 10): BounceType.HARD_BOUNCE,  # recipient domain has a null MX (RFC 7505)
    (2, 1): BounceType.SOFT_BOUNCE,  # mailbox disabled
    (2, 2): BounceType.SOFT_BOUNCE,  # mailbox full
    (2, 3): BounceType.SOFT_BOUNCE,  # message too long for mailbox
    (3, 4): BounceType.SOFT_BOUNCE,  # message too big for system
    (4, 4): BounceType.DNS_ERROR,  # unable to route
    (6, 7): BounceType.HARD_BOUNCE,  # non-ASCII address, and the server has no SMTPUTF8 (RFC 6531)
    (7, 1): BounceType.BLOCKED,  # delivery not authorized
    (7, 26): BounceType.DMARC_POLICY,  # multiple authentication checks failed
}
SPAM_WORDS = ("spam", "blacklist", "blocklist", "listed", "reputation")


def classify(code: int, message: str) -> Verdict:
    """2xx delivered; 4xx retried; 5xx a bounce typed from the enhanced code and the text."""
    if 200 <= code < 300:
        return Verdict(Outcome.DELIVERED)
    if code < 500:
        return Verdict(Outcome.RETRY)
    text = message.lower()
    match = ENHANCED.search(message)
    if match is not None:
        subject, detail = int(match.group(2)), int(match.group(3))
        if subject == 7:
            if "dmarc" in text:
                return Verdict(Outcome.BOUNCE, BounceType.DMARC_POLICY)
            if any(word in text for word in SPAM_WORDS):
                return Verdict(Outcome.BOUNCE, BounceType.SPAM_NOTIFICATION)
            return Verdict(Outcome.BOUNCE, BY_ENHANCED.get((7, detail), BounceType.BLOCKED))
        found = BY_ENHANCED.get((subject, detail))
        if found is not None:
            return Verdict(Outcome.BOUNCE, found)
    if code == 552 or "mailbox full" in text or "quota" in text:
        return Verdict(Outcome.BOUNCE, BounceType.SOFT_BOUNCE)
    if code in (550, 551, 553) and any(w in text for w in ("unknown", "no such", "does not exist", "not found", "invalid recipient")):
        return Verdict(Outcome.BOUNCE, BounceType.HARD_BOUNCE)
    if code == 554 and any(word in text for word in SPAM_WORDS):
        return Verdict(Outcome.BOUNCE, BounceType.SPAM_NOTIFICATION)
    if code in (550, 551, 553):
        return Verdict(Outcome.BOUNCE, BounceType.HARD_BOUNCE)
    return Verdict(Outcome.BOUNCE, BounceType.UNKNOWN)
