from __future__ import annotations

from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import compat32

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.schemas.smtp import SmtpSubmissionResult
from smtp_service.api_client import InboundOutcome, RecipientOutcome, SubmitOutcome
from smtp_service.protocol import has_smuggled_end, normalise_line_endings, received_header, strip_spam_headers
from smtp_service.replies import inbound_reply, recipient_reply, submission_reply


class TestSmuggling:
    @pytest.mark.parametrize("ending", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r"])
    def test_dot_lines_next_to_bare_breaks_are_suspect(self, ending: bytes) -> None:
        assert has_smuggled_end(b"Subject: x\r\n\r\nbody" + ending + b"MAIL FROM:<a@b.c>\r\n")

    def test_dot_stuffed_content_is_fine(self) -> None:
        assert not has_smuggled_end(b"Subject: x\r\n\r\nline\r\n.\r\nmore\r\n")
        assert not has_smuggled_end(b"a.b\nc.\n.d\r\n")

    @given(st.binary(max_size=200))
    def test_normalised_data_has_only_crlf(self, data: bytes) -> None:
        out = normalise_line_endings(data)
        assert b"\n" not in out.replace(b"\r\n", b"")
        assert b"\r" not in out.replace(b"\r\n", b"")
        assert not has_smuggled_end(out)


class TestReplies:
    @pytest.mark.parametrize(
        ("outcome", "reply"),
        [
            (SubmitOutcome(status=200, result=SmtpSubmissionResult(MessageID="m-1")), "250 2.0.0 Ok: queued as m-1"),
            (SubmitOutcome(status=0, message="ConnectError"), "451 4.3.0"),
            (SubmitOutcome(status=503, message="down"), "451 4.3.0"),
            (SubmitOutcome(status=422, error_code=1460, message="off"), "550 5.7.1"),
            (SubmitOutcome(status=422, error_code=300, message="bad"), "554 5.6.0 bad"),
            (SubmitOutcome(status=401, error_code=10, message="token"), "535 5.7.8"),
        ],
    )
    def test_api_outcome_to_smtp_reply(self, outcome: SubmitOutcome, reply: str) -> None:
        assert submission_reply(outcome).startswith(reply)


def _headers_and_body(data: bytes) -> tuple[list[tuple[str, str]], object]:
    message = BytesParser(policy=compat32).parsebytes(data)
    return list(message.raw_items()), message.get_payload()


def _is_spam_field(name: str) -> bool:
    name = name.lower()
    return name == "x-spam" or name.startswith("x-spam-")


FIELD_NAMES = st.sampled_from(
    ["X-Spam-Score", "x-spam-status", "X-Spam", "X-SPAM-FLAG", "X-Spammer", "X-Spam2", "Subject", "Received", "From"]
)
FIELD_VALUES = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30)
FOLDED_VALUES = st.lists(FIELD_VALUES, min_size=1, max_size=3).map(lambda parts: "\r\n\t".join(parts))


class TestStripSpamHeaders:
    def test_removes_every_x_spam_field_with_its_continuations(self) -> None:
        message = (
            b"From: a@example.com\r\nX-Spam-Score: 25\r\nX-Spam-Status: Yes, score=25\r\n\ttests=FORGED\r\nSubject: hi\r\n"
            b"X-Spam: yes\r\nX-Spammer: keep me\r\n\r\nX-Spam-Score: 1 (in the body: kept)\r\n"
        )
        assert strip_spam_headers(message) == (
            b"From: a@example.com\r\nSubject: hi\r\nX-Spammer: keep me\r\n\r\nX-Spam-Score: 1 (in the body: kept)\r\n"
        )

    @given(st.lists(st.tuples(FIELD_NAMES, FOLDED_VALUES), max_size=8), st.binary(max_size=200))
    def test_a_parser_sees_the_same_fields_less_x_spam_and_the_same_body(self, fields: list[tuple[str, str]], body: bytes) -> None:
        head = b"".join(f"{name}: {value}\r\n".encode() for name, value in fields)
        data = normalise_line_endings(head + b"\r\n" + body)
        before_headers, before_body = _headers_and_body(data)
        after_headers, after_body = _headers_and_body(strip_spam_headers(data))
        assert after_headers == [(name, value) for name, value in before_headers if not _is_spam_field(name)]
        assert after_body == before_body

    @given(st.binary(max_size=400))
    def test_arbitrary_bytes_lose_exactly_the_x_spam_fields_a_parser_reads(self, data: bytes) -> None:
        data = normalise_line_endings(data)
        before_headers, before_body = _headers_and_body(data)
        after_headers, after_body = _headers_and_body(strip_spam_headers(data))
        assert after_headers == [(name, value) for name, value in before_headers if not _is_spam_field(name)]
        assert after_body == before_body

    @given(st.binary(max_size=400).map(normalise_line_endings))
    def test_data_without_x_spam_fields_is_unchanged(self, data: bytes) -> None:
        if not any(_is_spam_field(name) for name, _ in _headers_and_body(data)[0]):
            assert strip_spam_headers(data) == data


class TestReceivedHeader:
    @given(st.text(max_size=40), st.text(max_size=40), st.one_of(st.none(), st.text(max_size=40)))
    def test_is_one_well_formed_trace_field_whatever_the_client_said(self, helo: str, peer: str, recipient: str | None) -> None:
        trace = received_header(
            helo=helo, peer_ip=peer, hostname="mx.postgate.test", protocol="ESMTP", queue_id="abc123", recipient=recipient,
            when=datetime(2025, 3, 4, 8, 0, tzinfo=UTC),
        )  # fmt: skip
        parsed = BytesParser(policy=compat32).parsebytes(trace + b"Subject: x\r\n\r\nbody")
        assert [name for name, _ in parsed.raw_items()] == ["Received", "Subject"]
        assert trace.endswith(b";\r\n\tTue, 04 Mar 2025 08:00:00 +0000\r\n")
        assert all(line[:1] in (b"\t",) for line in trace.split(b"\r\n")[1:-1])


class TestInboundReplies:
    @pytest.mark.parametrize(
        ("outcome", "reply"),
        [
            (RecipientOutcome.ACCEPTED, "250 2.1.5"),
            (RecipientOutcome.UNKNOWN, "550 5.1.1"),
            (RecipientOutcome.FOREIGN, "550 5.7.1 Relaying denied: example.net"),
            (RecipientOutcome.UNAVAILABLE, "451 4.3.0"),
        ],
    )
    def test_recipient_check_to_rcpt_reply(self, outcome: RecipientOutcome, reply: str) -> None:
        assert recipient_reply(outcome, domain="example.net").startswith(reply)

    @pytest.mark.parametrize(
        ("outcome", "reply"),
        [
            (InboundOutcome(status=200, message_ids=("m-1", "m-2")), "250 2.0.0 Ok: queued as m-1 m-2"),
            (InboundOutcome(status=200), "451 4.3.0"),
            (InboundOutcome(status=0, message="ConnectError"), "451 4.3.0"),
            (InboundOutcome(status=500, error_code=101, message="boom"), "451 4.3.0"),
            # The operator's ACCOUNT_TOKEN is wrong: keep the mail at the sender until it is fixed.
            (InboundOutcome(status=401, error_code=10, message="token"), "451 4.3.0"),
            (InboundOutcome(status=413, error_code=300, message="big"), "552 5.3.4"),
            (
                InboundOutcome(status=422, error_code=300, message="No recipient of this message is an inbound address."),
                "550 5.1.1 No recipient",
            ),
        ],
    )
    def test_api_outcome_to_data_reply(self, outcome: InboundOutcome, reply: str) -> None:
        assert inbound_reply(outcome).startswith(reply)
