"""Scoped and revoked server tokens over SMTP: send works, read is no SMTP credential, a revoked
token is refused at the next AUTH and for a session that authenticated before."""

from __future__ import annotations

import io
import smtplib

import pytest

from api_service.config import Settings
from api_service.console import cli
from tests.smtp_service.conftest import Gateway, SmtpServerHandle
from tests.smtp_service.test_gateway import connect, mail

pytestmark = pytest.mark.slow


def shell(settings: Settings, *args: str) -> str:
    out = io.StringIO()
    assert cli.main(list(args), settings=settings, out=out) == 0
    return out.getvalue().strip().splitlines()[-1]


class TestScopesOverSmtp:
    def test_send_token_sends_read_token_does_not_and_revocation_is_immediate(
        self, gateway: Gateway, smtp_server: SmtpServerHandle, settings: Settings
    ) -> None:
        sender = shell(settings, "tokens", "create", "--server", str(smtp_server.id), "--name", "app", "--scope", "send")
        reader = shell(settings, "tokens", "create", "--server", str(smtp_server.id), "--name", "stats", "--scope", "read")
        with connect(gateway) as client:
            client.login(sender, sender)
            assert client.send_message(mail()) == {}
            with connect(gateway) as other, pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                other.login(reader, reader)
            assert refused.value.smtp_code == 535

            shell(settings, "tokens", "revoke", "--server", str(smtp_server.id), "--name", "app")
            with pytest.raises(smtplib.SMTPResponseException) as after:
                client.send_message(mail())
            assert 500 <= after.value.smtp_code < 600
        with connect(gateway) as client, pytest.raises(smtplib.SMTPAuthenticationError) as again:
            client.login(sender, sender)
        assert again.value.smtp_code == 535
