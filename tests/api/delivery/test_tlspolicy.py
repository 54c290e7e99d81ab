"""The TLS policy's pure parts: MTA-STS records and policy files, MX patterns, overrides, TLSA matching."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given
from hypothesis import strategies as st

from api_service.delivery.tlspolicy import (
    Mode,
    Override,
    PolicyInvalid,
    Security,
    Tlsa,
    mx_matches,
    parse_overrides,
    parse_policy,
    parse_sts_record,
    usable,
)
from tests.api.delivery.pki import TestCa


class TestStsRecord:
    @pytest.mark.parametrize(
        ("texts", "expected"),
        [
            (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
            (["v=STSv1;id=abc"], "abc"),
            (["v=STSv1; id=has-dash;"], None),
            (["v=STSv1; id=" + "a" * 33], None),
            (["v=STSv1; id=a;", "v=STSv1; id=b;"], None),  # two records: no policy (RFC 8461 §3.1)
            (["v=spf1 -all"], None),
            ([], None),
        ],
    )
    def test_id(self, texts: list[str], expected: str | None) -> None:
        assert parse_sts_record(texts) == expected


class TestPolicyFile:
    def test_enforce_policy(self) -> None:
        policy = parse_policy(
            b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n", policy_id="1", now=0
        )
        assert policy.mode is Mode.ENFORCE
        assert policy.mx == ("mail.example.com", "*.example.net")
        assert policy.expires_at == 604800
        assert policy.lines() == ["version: STSv1", "mode: enforce", "mx: mail.example.com", "mx: *.example.net", "max_age: 604800"]

    def test_none_needs_no_mx(self) -> None:
        assert parse_policy(b"version: STSv1\nmode: none\nmax_age: 86400\n", policy_id="1").mode is Mode.NONE

    @pytest.mark.parametrize(
        "body",
        [
            b"version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
            b"version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n",
            b"version: STSv1\nmode: enforce\nmax_age: 1\n",
            b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n",
            b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
            b"version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 1\n",
            b"version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n",
            b"<html>not a policy</html>",
            "version: STSv1\nmode: enforce\nmx: é.example\nmax_age: 1\n".encode(),
        ],
    )
    def test_invalid(self, body: bytes) -> None:
        with pytest.raises(PolicyInvalid):
            parse_policy(body, policy_id="1")

    @given(st.binary(max_size=300))
    def test_any_bytes_give_a_policy_or_policy_invalid(self, body: bytes) -> None:
        with contextlib.suppress(PolicyInvalid):
            parse_policy(body, policy_id="1")


class TestMxPatterns:
    @pytest.mark.parametrize(
        ("host", "pattern", "expected"),
        [
            ("mail.example.com", "mail.example.com", True),
            ("MAIL.example.com.", "mail.example.com", True),
            ("mx1.example.net", "*.example.net", True),
            ("a.mx1.example.net", "*.example.net", False),  # one label only
            ("example.net", "*.example.net", False),
            ("evil-example.net", "*.example.net", False),
        ],
    )
    def test_match(self, host: str, pattern: str, expected: bool) -> None:
        assert mx_matches(host, pattern) is expected


class TestOverrides:
    def test_settings_and_file(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.toml"
        path.write_text('[tls."bank.example"]\nsecurity = "verify"\nnames = ["mx.bank.example"]\n[tls."b.example"]\nsecurity = "may"\n')
        found = parse_overrides(require="a.example, b.example", verify="c.example", policy_file=str(path))
        assert found == {
            "a.example": Override(security=Security.ENCRYPT),
            "b.example": Override(security=Security.MAY),  # the file wins
            "c.example": Override(security=Security.VERIFY),
            "bank.example": Override(security=Security.VERIFY, names=("mx.bank.example",)),
        }

    @pytest.mark.parametrize(
        "text",
        [
            '[tls."x.example"]\nsecurity = "strict"\n',
            '[tls."x.example"]\nnames = "mx"\n',
            '[tls."x.example"]\nport = 25\n',
            "tls = 1\n",
            "[tls\n",
        ],
    )
    def test_bad_file_is_refused(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "policy.toml"
        path.write_text(text)
        with pytest.raises(ValueError, match="DELIVERY_POLICY_FILE"):
            parse_overrides(require="", verify="", policy_file=str(path))

    def test_a_file_without_a_tls_section_is_fine(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.toml"
        path.write_text('[destinations."gmail.com"]\nconnections = 5\n')  # the shaping sections belong to others
        assert parse_overrides(require="", verify="", policy_file=str(path)) == {}


class TestTlsa:
    def test_selectors_and_matching_types(self, tmp_path: Path) -> None:
        cert = TestCa(tmp_path).issue("mx.example.net").cert
        der = cert.public_bytes(Encoding.DER)
        spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        assert Tlsa(3, 0, 0, der).matches(cert)
        assert Tlsa(3, 0, 1, hashlib.sha256(der).digest()).matches(cert)
        assert Tlsa(3, 1, 2, hashlib.sha512(spki).digest()).matches(cert)
        assert not Tlsa(3, 1, 1, hashlib.sha256(der).digest()).matches(cert)

    def test_pkix_usages_are_unusable_for_smtp(self) -> None:
        records = [
            Tlsa(0, 0, 1, b"x"),
            Tlsa(1, 1, 1, b"x"),
            Tlsa(2, 1, 1, b"x"),
            Tlsa(3, 1, 1, b"x"),
            Tlsa(3, 2, 1, b"x"),
            Tlsa(3, 1, 9, b"x"),
        ]
        assert [(r.usage, r.selector, r.mtype) for r in usable(records)] == [(2, 1, 1), (3, 1, 1)]
