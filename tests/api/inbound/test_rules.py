"""Inbound rules and the spam threshold: pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_service.inbound.rules import blocked_reason, matching_rule, normalise_rule, over_spam_threshold, rule_matches

# A label with "--" in its third and fourth places is a reserved (R-LDH) label that no address may have
# (RFC 5890; email-validator refuses it), unless it is Punycode.
LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(lambda s: s[2:4] != "--")
DOMAIN = st.builds(
    lambda labels, tld: ".".join([*labels, tld]), st.lists(LABEL, min_size=1, max_size=3), st.sampled_from(["com", "net", "org", "de"])
)
LOCAL = st.from_regex(r"[a-z0-9]([a-z0-9._+-]{0,15}[a-z0-9])?", fullmatch=True).filter(lambda s: ".." not in s)


class TestNormaliseRule:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("Spammer@Example.NET", "spammer@example.net"),
            ("  example.net ", "example.net"),
            ("*.example.net", "example.net"),
            ("example.net.", "example.net"),
            ("münchen.de", "münchen.de"),
        ],
    )
    def test_addresses_and_domains_are_kept_lower_cased(self, value: str, expected: str) -> None:
        assert normalise_rule(value) == expected

    @pytest.mark.parametrize(
        "value", ["", "   ", "not a rule", "a@", "@example.net", "localhost", "a@b", "10.0.0.1", "a,b@example.net", "x" * 400]
    )
    def test_anything_else_is_refused(self, value: str) -> None:
        assert normalise_rule(value) is None


class TestMatching:
    @given(LOCAL, DOMAIN)
    def test_an_address_matches_its_own_rule_and_its_domains(self, local: str, domain: str) -> None:
        address = f"{local}@{domain}"
        rule = normalise_rule(address)
        assert rule is not None
        assert rule_matches(rule, address.upper())
        assert rule_matches(domain, address)
        assert rule_matches(domain, f"{local}@mail.{domain}")
        assert not rule_matches(domain, f"{local}@not{domain}")
        assert not rule_matches(rule, f"other{local}@{domain}")

    def test_punycode_senders_match_unicode_rules(self) -> None:
        assert rule_matches("münchen.de", "info@xn--mnchen-3ya.de")
        assert rule_matches("info@münchen.de", "Info@xn--mnchen-3ya.de")

    def test_anything_without_an_at_matches_nothing(self) -> None:
        assert not rule_matches("example.net", "example.net")
        assert not rule_matches("example.net", "")

    def test_the_first_matching_rule_is_named(self) -> None:
        assert matching_rule(["a@example.org", "example.net"], ["x@example.com", "bounce@mail.example.net"]) == "example.net"
        assert matching_rule(["example.net"], ["x@example.com", ""]) is None


class TestBlockedReason:
    @pytest.mark.parametrize(
        ("score", "threshold", "blocked"),
        [(None, 5, False), (4.9, 5, False), (5.0, 5, False), (5.1, 5, True), (29.0, 0, False), (-3.0, 5, False)],
    )
    def test_the_threshold_blocks_scores_above_it_and_zero_is_off(self, score: float | None, threshold: int, blocked: bool) -> None:
        assert over_spam_threshold(score, threshold) is blocked
        assert bool(blocked_reason(rules=[], senders=["a@example.com"], score=score, threshold=threshold)) is blocked

    def test_reasons_name_the_rule_or_the_score(self) -> None:
        assert blocked_reason(rules=["example.com"], senders=["a@example.com"], score=None, threshold=0) == (
            "Blocked by the inbound rule 'example.com'."
        )
        assert "12.5" in blocked_reason(rules=[], senders=["a@example.com"], score=12.5, threshold=10)
        assert blocked_reason(rules=["example.org"], senders=["a@example.com"], score=1.0, threshold=10) == ""
