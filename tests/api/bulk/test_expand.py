"""The pure parts of the Bulk API: reading the shared part, laying an entry over it, and the pagination key."""

from __future__ import annotations

import base64
import json
import re
from datetime import UTC
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_service.bulk import expand
from api_service.bulk.service import decode_pagination_key, encode_pagination_key
from api_service.errors import PostmarkError
from api_service.models import BulkRequest
from shared.schemas.bulk import BulkEmailRequest, BulkMessage
from shared.schemas.email import MessageHeader


def request(**fields: Any) -> BulkEmailRequest:
    body: dict[str, Any] = {"From": "news@example.org", "Subject": "Hi {{ name }}", "TextBody": "Hello {{ name }}", "Messages": []}
    body.update(fields)
    return BulkEmailRequest.model_validate({k: v for k, v in body.items() if v is not None})


class TestReadShared:
    def test_attachments_are_decoded_once_and_shared(self) -> None:
        shared = expand.read_shared(request(Attachments=[{"Name": "a.txt", "Content": base64.b64encode(b"hi").decode()}]))
        first = expand.expand(shared, BulkMessage(To="a@example.net"))
        second = expand.expand(shared, BulkMessage(To="b@example.net"))
        assert first.attachments is second.attachments
        assert [a.content for a in first.attachments] == [b"hi"]

    def test_the_default_stream_is_broadcast(self) -> None:
        assert expand.read_shared(request()).probe.message_stream == "broadcast"
        assert expand.read_shared(request(MessageStream=" News ")).probe.message_stream == "news"

    @pytest.mark.parametrize(
        ("fields", "code"),
        [
            ({"TextBody": None, "Subject": None}, 300),
            ({"From": "not an address"}, 300),
            ({"TemplateAlias": "news"}, 1123),
            ({"TemplateId": 7, "Subject": None, "TextBody": "x"}, 1123),
            ({"Subject": "{{#each x}}"}, 1122),
            ({"TrackLinks": "Sometimes"}, 300),
            ({"Attachments": [{"Name": "x.exe", "Content": "TVo="}]}, 411),
        ],
    )
    def test_problems_of_the_shared_part(self, fields: dict[str, Any], code: int) -> None:
        with pytest.raises(PostmarkError) as caught:
            expand.read_shared(request(**fields))
        assert caught.value.error_code == code

    def test_a_template_needs_no_content(self) -> None:
        shared = expand.read_shared(request(Subject=None, TextBody=None, TemplateAlias=" news "))
        assert (shared.templated, shared.template_alias, shared.inline_css) == (True, "news", True)


class TestExpand:
    def test_inline_content_is_filled_from_the_entry_model(self) -> None:
        shared = expand.read_shared(request(HtmlBody="<p>{{ name }}</p>"))
        message = expand.expand(shared, BulkMessage(To="Ann <ann@example.net>", TemplateModel={"name": "<Ann>"}))
        assert (message.subject, message.text_body, message.html_body) == ("Hi <Ann>", "Hello <Ann>", "<p>&lt;Ann&gt;</p>")
        assert [m.email for m in message.to] == ["ann@example.net"]

    def test_an_entry_without_a_model_renders_blanks(self) -> None:
        message = expand.expand(expand.read_shared(request()), BulkMessage(To="ann@example.net"))
        assert (message.subject, message.text_body) == ("Hi ", "Hello ")

    def test_a_template_entry_carries_its_reference(self) -> None:
        shared = expand.read_shared(request(Subject=None, TextBody=None, TemplateId=12, InlineCss=False))
        message = expand.expand(shared, BulkMessage(To="ann@example.net", TemplateModel={"a": 1}))
        assert message.template is not None
        assert (message.template.template_id, message.template.model, message.template.inline_css) == (12, {"a": 1}, False)

    def test_entry_metadata_wins(self) -> None:
        shared = expand.read_shared(request(Metadata={"a": "1", "b": "2"}))
        message = expand.expand(shared, BulkMessage(To="ann@example.net", Metadata={"b": "3", "c": 4}))
        assert message.metadata == {"a": "1", "b": "3", "c": "4"}

    def test_a_model_that_does_not_render_is_1122(self) -> None:
        shared = expand.read_shared(request(TextBody="{{#each items}}{{ . }}{{/each}}"))
        with pytest.raises(PostmarkError) as caught:
            expand.expand(shared, BulkMessage(To="ann@example.net", TemplateModel={"items": 3}))
        assert caught.value.error_code == 1122

    @pytest.mark.parametrize(
        ("entry", "problem"),
        [
            (BulkMessage(To="ann@example.net"), None),
            (BulkMessage(Bcc="ann@example.net"), None),
            (BulkMessage(), "Zero recipients specified."),
            (BulkMessage(To="x"), "Invalid 'To' address: 'x'."),
            (BulkMessage(To=", ".join(f"u{i}@example.net" for i in range(51))), "Too many 'To' recipients (51). The maximum is 50."),
            (BulkMessage(To="ann@example.net", Headers=[MessageHeader(Name="Bad Name", Value="v")]), "Invalid header name: 'Bad Name'."),
        ],
    )
    def test_entry_problems(self, entry: BulkMessage, problem: str | None) -> None:
        found = expand.entry_problem(expand.read_shared(request()), entry)
        assert (found.message if found else None) == problem


NAMES = st.sampled_from(["X-A", "x-a", "X-B", "X-C", "x-c "])
HEADERS = st.lists(st.builds(MessageHeader, Name=NAMES, Value=st.text(max_size=3)), max_size=6)


class TestMergedHeaders:
    @given(shared=HEADERS, own=HEADERS)
    def test_the_entry_names_win_and_nothing_else_is_lost(self, shared: list[MessageHeader], own: list[MessageHeader]) -> None:
        merged = expand.merged_headers(shared, own)

        def key(h: MessageHeader) -> str:
            return (h.Name or "").strip().lower()

        named = {key(h) for h in own}
        assert merged[len(merged) - len(own) :] == own
        assert merged[: len(merged) - len(own)] == [h for h in shared if key(h) not in named]


class TestPaginationKey:
    @given(st.datetimes(timezones=st.just(UTC)), st.uuids())
    def test_round_trip(self, created_at: Any, request_id: Any) -> None:
        row = BulkRequest(id=request_id, created_at=created_at)
        assert decode_pagination_key(encode_pagination_key(row)) == (created_at, request_id)

    @given(st.text(max_size=200))
    def test_any_other_text_is_13_and_nothing_else(self, key: str) -> None:
        outcome: Any
        try:
            outcome = decode_pagination_key(key)
        except PostmarkError as exc:
            outcome = exc.error_code
        assert outcome == 13 or outcome[0].tzinfo is not None


ESCAPED_NUL = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet=st.sampled_from("\x00\\u0a"), max_size=8) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner, max_size=4),
    max_leaves=12,
)


class TestHasNul:
    @given(JSON)
    def test_agrees_with_the_json_encoder(self, value: Any) -> None:
        # The encoder writes NUL as \u0000; an escaped backslash before "u0000" is not one.
        assert expand.has_nul(value) == bool(ESCAPED_NUL.search(json.dumps(value)))
