"""Which received mail is blocked: inbound rules (a sender address or domain) and the spam
threshold. Pure functions, no I/O.

An address rule matches that address (case-insensitively); a domain rule matches every address at
the domain and at its subdomains. Rules are checked against the sender's From address and the
envelope sender (MAIL FROM); both are the sender's to choose, so either matching blocks.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

MAX_RULE_CHARS = 320


def normalise_rule(value: str) -> str | None:
    """A rule as stored: the lower-cased email address or domain; None when it is neither."""
    value = value.strip().lower()
    if not value or len(value) > MAX_RULE_CHARS or any(c.isspace() or c in "\x00<>\"'," for c in value):
        return None
    if "@" in value:
        try:
            return validate_email(value, check_deliverability=False).normalized.lower()
        except EmailNotValidError:
            return None
    domain = value.removeprefix("*.").rstrip(".")
    try:
        return validate_email(f"rule@{domain}", check_deliverability=False).domain.lower()
    except EmailNotValidError:
        return None


def rule_matches(rule: str, address: str) -> bool:
    address = address.strip().lower()
    if not address or "@" not in address:
        return False
    local, _, domain = address.rpartition("@")
    domain = _unicode_domain(domain.rstrip("."))
    if "@" in rule:
        return f"{local}@{domain}" == rule
    return domain == rule or domain.endswith("." + rule)


def _unicode_domain(domain: str) -> str:
    """A domain with its xn-- labels decoded, as rules store international domains."""
    if "xn--" not in domain:
        return domain
    try:
        return domain.encode("ascii").decode("idna").lower()
    except (UnicodeError, ValueError):
        return domain


def matching_rule(rules: list[str], senders: list[str]) -> str | None:
    """The first rule that matches one of the senders, or None."""
    return next((rule for rule in rules if any(rule_matches(rule, sender) for sender in senders)), None)


def over_spam_threshold(score: float | None, threshold: int) -> bool:
    """Postmark's InboundSpamThreshold: 0 is off; otherwise a score above it blocks. A message
    without a score (no trusted filter scored it) is never blocked by the threshold."""
    return threshold > 0 and score is not None and score > threshold


def blocked_reason(*, rules: list[str], senders: list[str], score: float | None, threshold: int) -> str:
    """Why a message is blocked; empty when it is not."""
    rule = matching_rule(rules, senders)
    if rule is not None:
        return f"Blocked by the inbound rule '{rule}'."
    if over_spam_threshold(score, threshold):
        return f"Spam score {score:g} is above the server's InboundSpamThreshold of {threshold}."
    return ""
