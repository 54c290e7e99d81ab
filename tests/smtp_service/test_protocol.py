from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.schemas.smtp import SmtpSubmissionResult
from smtp_service.api_client import SubmitOutcome
from smtp_service.protocol import has_smuggled_end, normalise_line_endings
from smtp_service.replies import submission_reply


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
