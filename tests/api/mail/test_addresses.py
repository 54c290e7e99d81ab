"""Address fields are parsed in time linear in their length: no backtracking regular expression,
and only short items ever reach the standard library's (quadratic) parser."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from email.headerregistry import HeaderRegistry
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_service.mail import addresses
from api_service.mail.addresses import (
    FULL_PARSER_BUDGET_CHARS,
    MAX_ADDRESS_ITEM_CHARS,
    AddressError,
    Mailbox,
    parse_address_list,
    split_items,
)
from shared.constants import MAX_ADDRESS_FIELD_CHARS
from tests.factories import message

ADVERSARIAL = {
    "spaces between two words": "a" + " " * 19_000 + "b",
    "one long quoted string": '"' * 19_998,
    "quoted names": ", ".join(['"' + '""' * 190 + '" <a@b.c>'] * 48),
    "dots": ", ".join(["a" + "." * 380 + "@b.c"] * 48),
    "nested comments": "(" * 19_000 + "a@b.c",
    "comments": ", ".join(["(" + "x" * 900 + ") a@b.c"] * 20),
    "commas": "," * 19_000 + "a@b.c",
    "angle brackets": "<" * 19_000,
    "groups": "a:" * 9_000,
    "source routes": "<@a,@b,@c" * 2_000 + ":a@b.c>",
    "backslashes": '"' + "\\" * 19_000 + '"',
}


@pytest.fixture
def full_parser_inputs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The length of every value handed to the standard library's parser."""
    seen: list[int] = []
    registry = HeaderRegistry()

    def spy(name: str, value: str) -> Any:
        seen.append(len(value))
        return registry(name, value)

    monkeypatch.setattr(addresses, "_REGISTRY", spy)
    addresses._parse_cached.cache_clear()
    yield seen
    addresses._parse_cached.cache_clear()


class TestBoundedWork:
    @pytest.mark.timeout(10)
    def test_the_reported_input_is_refused_unread(self, full_parser_inputs: list[int]) -> None:
        with pytest.raises(AddressError, match="longer than"):
            parse_address_list("a" + " " * 100_000 + "b")
        assert full_parser_inputs == []

    @pytest.mark.timeout(10)
    @pytest.mark.parametrize("value", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
    def test_full_parser_sees_only_short_items_within_a_budget(self, value: str, full_parser_inputs: list[int]) -> None:
        assert len(value) <= MAX_ADDRESS_FIELD_CHARS
        with contextlib.suppress(AddressError):
            parse_address_list(value)
        assert all(n <= MAX_ADDRESS_ITEM_CHARS for n in full_parser_inputs)
        assert sum(full_parser_inputs) <= FULL_PARSER_BUDGET_CHARS

    def test_common_shapes_never_reach_the_full_parser(self, full_parser_inputs: list[int]) -> None:
        value = ", ".join(f"Person {i} <p{i}@example.com>" for i in range(25)) + ", " + ", ".join(f"q{i}@example.net" for i in range(25))
        assert len(parse_address_list(value)) == 50
        assert full_parser_inputs == []


QUOTED_NAME = st.text(alphabet=st.sampled_from('abc XYZ,;:.@<>()\\"'), min_size=1, max_size=12).map(
    lambda s: '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
)
PLAIN_NAME = st.text(alphabet=st.sampled_from("abcdefgh XYZ"), max_size=12)
ADDRESS = st.builds(
    lambda local, domain: f"{local}@{domain}.example", st.sampled_from(["a", "b.c", "d-e", "f+g"]), st.sampled_from(["x", "y"])
)
ITEM = st.one_of(
    ADDRESS,
    st.builds(lambda name, addr: f"{name} <{addr}>", QUOTED_NAME, ADDRESS),
    st.builds(lambda name, addr: f"{name} <{addr}>" if name.strip() else addr, PLAIN_NAME, ADDRESS),
    st.builds(lambda addr, comment: f"{addr} (comment {comment})", ADDRESS, st.sampled_from(["a", "b, c", "(nested)"])),
)


class TestAgreesWithTheStandardLibrary:
    @given(st.lists(ITEM, min_size=1, max_size=6), st.booleans())
    def test_same_mailboxes_as_the_email_package(self, items: list[str], as_group: bool) -> None:
        value = ", ".join(items)
        if as_group:
            value = f"team: {value};"
        header = HeaderRegistry()("To", value)
        expected = [Mailbox(name=" ".join(a.display_name.split()), email=a.addr_spec) for a in header.addresses]  # type: ignore[attr-defined]
        assert parse_address_list(value) == expected

    @given(st.lists(ITEM, min_size=1, max_size=6))
    def test_split_finds_each_item(self, items: list[str]) -> None:
        assert [i.strip() for i in split_items(", ".join(items))] == [i.strip() for i in items]


@pytest.mark.asyncio
class TestOverTheApi:
    @pytest.mark.timeout(10)
    async def test_test_token_with_a_huge_to_is_refused_at_once(self, client: httpx.AsyncClient) -> None:
        headers = {"X-Postmark-Server-Token": "POSTMARK_API_TEST"}
        response = await client.post("/email", json=message(To="a" + " " * 100_000 + "b"), headers=headers)
        assert response.status_code == 422
        assert response.json()["ErrorCode"] == 300
        assert f"at most {MAX_ADDRESS_FIELD_CHARS} characters" in response.json()["Message"]
