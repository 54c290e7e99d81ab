"""The new user's path: start Postgate, create a server and a sender, send with postmarker."""

from __future__ import annotations

import signal

import httpx
import pytest
from postmarker.core import PostmarkClient

from tests.e2e.conftest import RunningPostgate

pytestmark = pytest.mark.slow


def test_new_user_sends_first_mail_with_postmarker(postgate: RunningPostgate) -> None:
    account = {"X-Postmark-Account-Token": postgate.account_token, "Accept": "application/json"}
    created = httpx.post(f"{postgate.api_url}/servers", json={"Name": "My app"}, headers=account)
    assert created.status_code == 200, created.text
    token = created.json()["ApiTokens"][0]

    client = PostmarkClient(server_token=token, account_token=postgate.account_token, root_api_url=postgate.api_url + "/")
    sender = client.senders.create(FromEmail="hello@myapp.example", Name="My App")
    assert sender.Confirmed is True

    sent = client.emails.send(
        From="My App <hello@myapp.example>", To="user@example.net", Subject="Welcome", TextBody="Hi!", HtmlBody="<b>Hi!</b>"
    )
    assert sent["ErrorCode"] == 0
    messages = client.messages.outbound.all(count=10)
    assert [m.MessageID for m in messages] == [sent["MessageID"]]
    assert messages[0].Status == "Queued"
    assert messages[0].Subject == "Welcome"
    assert client.server.get().Name == "My app"


def test_ctrl_c_stops_everything(postgate: RunningPostgate) -> None:
    postgate.process.send_signal(signal.SIGINT)
    assert postgate.process.wait(timeout=20) == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{postgate.api_url}/health", timeout=2)
