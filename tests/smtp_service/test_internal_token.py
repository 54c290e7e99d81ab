"""The gateway's credential on /internal/smtp/*: sent on every call, and a refusal of it is the
operator's misconfiguration (a temporary failure), never the SMTP client's fault."""

from __future__ import annotations

import base64
import smtplib
from collections.abc import Iterator

import pytest

from shared.schemas.smtp import SmtpBatchEnvelope, SmtpBatchMessage
from smtp_service.api_client import ApiClient, AuthOutcome
from tests.conftest import ACCOUNT_TOKEN
from tests.smtp_service.conftest import Gateway, SmtpServerHandle, _gateway

pytestmark = pytest.mark.slow

WRONG = "not-the-internal-token-of-this-api"
RAW = b"From: sender@example.com\r\nTo: to@example.net\r\nSubject: hi\r\n\r\nhello\r\n"


@pytest.fixture(scope="module")
def misconfigured_gateway(live_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """A gateway given another INTERNAL_TOKEN than the API's."""
    yield from _gateway(live_api, tmp_path_factory, internal_token=WRONG)


class TestApiClient:
    @pytest.mark.asyncio
    async def test_single_and_batch_auth_answer_alike(self, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        api = ApiClient(base_url=clean_live_api, timeout=5, internal_token=ACCOUNT_TOKEN)
        try:
            tokens = [smtp_server.token, "bogus", "x" * 300]
            many = await api.authenticate_many(tokens)
            single = [await api.authenticate(token) for token in tokens]
        finally:
            await api.aclose()
        assert many == single == [AuthOutcome.OK, AuthOutcome.INVALID, AuthOutcome.INVALID]

    @pytest.mark.asyncio
    async def test_a_refused_gateway_is_a_temporary_failure(self, smtp_server: SmtpServerHandle, clean_live_api: str) -> None:
        api = ApiClient(base_url=clean_live_api, timeout=5, internal_token=WRONG)
        envelope = SmtpBatchEnvelope(Token=smtp_server.token, MailFrom="sender@example.com", RcptTo=["to@example.net"], Size=len(RAW))
        try:
            assert await api.authenticate_many([smtp_server.token, "bogus"]) == [AuthOutcome.UNAVAILABLE] * 2
            single = await api.submit(token=smtp_server.token, mail_from="sender@example.com", rcpt_tos=["to@example.net"], raw=RAW)
            [batched] = await api.submit_batch([SmtpBatchMessage(envelope=envelope, raw=RAW)])
        finally:
            await api.aclose()
        assert single.status == 0
        assert batched.status == 0


class TestMisconfiguredGateway:
    def test_auth_is_a_454_not_a_535(self, misconfigured_gateway: Gateway, smtp_server: SmtpServerHandle) -> None:
        token = smtp_server.token.encode()
        with smtplib.SMTP("127.0.0.1", misconfigured_gateway.port, timeout=10) as client:
            client.ehlo("client.example")
            code, text = client.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0" + token + b"\0" + token).decode())
        assert code == 454
        assert text.startswith(b"4.7.0")
