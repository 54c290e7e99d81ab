"""Tokens from the shell, over real sockets: `postgate tokens create` makes a second server token and
a send-only one, both send over REST and SMTP, `postgate tokens revoke` stops one at once in the
running API (another process) and gateway, and `postgate audit` shows who did it."""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import ROOT, RunningPostgate

# Four runs of the command, each a fresh interpreter, beside the three services: slow on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def postgate_command(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `postgate` console script, as an operator runs it."""
    script = Path(sys.executable).parent / "postgate"
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from api_service.devtools.launcher import main; main()"]
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([*command, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603


def new_token(database_url: str, *args: str) -> str:
    done = postgate_command(database_url, "tokens", "create", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def send_rest(postgate: RunningPostgate, token: str, subject: str) -> httpx.Response:
    mail = {"From": "sender@example.com", "To": "someone@example.net", "Subject": subject, "TextBody": "Hi"}
    return httpx.post(f"{postgate.api_url}/email", json=mail, headers={"X-Postmark-Server-Token": token, "Accept": "application/json"})


def send_smtp(postgate: RunningPostgate, token: str, subject: str) -> None:
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "sender@example.com", "someone@example.net", subject
    mail.set_content("Hi")
    with smtplib.SMTP("127.0.0.1", postgate.smtp_port, timeout=10) as smtp:
        smtp.login(token, token)
        smtp.send_message(mail)


def test_tokens_made_and_revoked_from_the_shell(postgate: RunningPostgate, database_url: str) -> None:
    account = {"X-Postmark-Account-Token": postgate.account_token, "Accept": "application/json"}
    created = httpx.post(f"{postgate.api_url}/servers", json={"Name": "Shop", "SmtpApiActivated": True}, headers=account)
    assert created.status_code == 200, created.text
    server_id = created.json()["ID"]
    httpx.post(
        f"{postgate.api_url}/senders", json={"FromEmail": "sender@example.com", "Name": "Sender"}, headers=account
    ).raise_for_status()

    second = new_token(database_url, "--server", str(server_id), "--name", "second")
    mailer = new_token(database_url, "--server", str(server_id), "--name", "mailer", "--scope", "send")

    for token in (second, mailer):
        sent = send_rest(postgate, token, "over REST")
        assert sent.status_code == 200, sent.text
        send_smtp(postgate, token, "over SMTP")
    # The send-only token sends and does nothing else.
    settings = httpx.get(f"{postgate.api_url}/server", headers={"X-Postmark-Server-Token": mailer, "Accept": "application/json"})
    assert (settings.status_code, settings.json()["ErrorCode"]) == (403, 1470)
    assert len(httpx.get(f"{postgate.api_url}/server", headers={"X-Postmark-Server-Token": second}).json()["ApiTokens"]) == 3

    revoked = postgate_command(database_url, "tokens", "revoke", "--server", str(server_id), "--name", "mailer")
    assert revoked.returncode == 0, revoked.stderr
    started = time.monotonic()
    while (refused := send_rest(postgate, mailer, "after revoke")).status_code != 401:
        assert time.monotonic() - started < 1.0, "the revoked token still sends after a second"
        time.sleep(0.05)
    assert refused.json()["ErrorCode"] == 10
    with pytest.raises(smtplib.SMTPAuthenticationError) as refusal:
        send_smtp(postgate, mailer, "after revoke")
    assert refusal.value.smtp_code == 535
    assert time.monotonic() - started < 1.0
    assert send_rest(postgate, second, "still works").status_code == 200

    exported = postgate_command(database_url, "audit", "--format", "jsonl")
    assert exported.returncode == 0, exported.stderr
    events = [json.loads(line) for line in exported.stdout.splitlines()]
    tokens = [(e["action"], e["after"] or e["before"]) for e in events if e["target_type"] == "server-token"]
    assert [(action, described["Name"]) for action, described in tokens] == [
        ("server-token.create", "second"),
        ("server-token.create", "mailer"),
        ("server-token.revoke", "mailer"),
    ]
    assert all(e["actor"].startswith("shell:") for e in events if e["target_type"] == "server-token")
    assert mailer not in exported.stdout
    assert second not in exported.stdout
    # The server was made with the account token: recorded too, sends are not.
    assert any(e["action"] == "POST /servers" and e["actor"] == "account-token:ACCOUNT_TOKEN" for e in events)
    assert not any("/email" in e["action"] for e in events)
