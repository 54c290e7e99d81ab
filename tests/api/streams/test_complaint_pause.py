"""A stream whose spam complaint rate over 7 days passes COMPLAINT_PAUSE_RATE (once it had
COMPLAINT_PAUSE_MIN_SENT recipients) is paused: new mail is refused until it is resumed; a stream
with PauseOnComplaints off keeps sending."""

from __future__ import annotations

import base64
import logging
import uuid

import pytest

from api_service.bounces.verp import return_path
from shared.schemas.bounce_reports import BOUNCE_REPORT_PATH
from tests.api.bounces.test_complaints import arf
from tests.api.conftest import MakeApp, OtherApp, Receiver, Worker
from tests.conftest import ACCOUNT_TOKEN
from tests.factories import ACCOUNT, ServerHandle, create_domain, create_server, message

pytestmark = pytest.mark.asyncio
NEWS = {"From": "news@example.org", "MessageStream": "broadcast"}


async def setup(app: OtherApp) -> ServerHandle:
    await create_domain(app.client, "example.org")
    return await create_server(app.client)


async def send(app: OtherApp, server: ServerHandle, to: str) -> dict[str, object]:
    response = await app.client.post("/email", json=message(To=to, **NEWS), headers=server.headers)
    body: dict[str, object] = response.json()
    return body


async def complain(app: OtherApp, message_id: str, recipient: str) -> None:
    """An ARF report from the recipient's own domain, mailed to the message's return path."""
    path = return_path(message_id=uuid.UUID(message_id), recipient=recipient, domain="bounces.postgate.test", secret=ACCOUNT_TOKEN)
    raw = arf(reporter=f"abuse@{recipient.split('@')[1]}", complainant=recipient)
    body = {"RcptTo": [path], "RawMessage": base64.b64encode(raw).decode(), "MailFrom": ""}
    response = await app.client.post(BOUNCE_REPORT_PATH, json=body, headers=ACCOUNT)
    assert response.json()["Matched"] == 1, response.text


async def test_complaints_past_the_line_pause_the_stream_until_resumed(
    other_app: MakeApp, caplog: pytest.LogCaptureFixture, receiver: Receiver, worker: Worker
) -> None:
    app = await other_app(complaint_pause_min_sent=4)
    server = await setup(app)
    hook = {"Url": receiver.url, "MessageStream": "broadcast", "Triggers": {"SpamComplaint": {"Enabled": True}}}
    assert (await app.client.post("/webhooks", json=hook, headers=server.headers)).status_code == 200
    sent = [str((await send(app, server, f"r{n}@example.net"))["MessageID"]) for n in range(3)]
    await complain(app, sent[0], "r0@example.net")  # 1 of 3: fewer recipients than the minimum, no pause
    assert (await send(app, server, "r3@example.net"))["ErrorCode"] == 0
    with caplog.at_level(logging.WARNING, logger="postgate.streams"):
        await complain(app, sent[1], "r1@example.net")  # 2 of 4 = 50 % > 0.3 %
    assert "message stream 'broadcast' paused" in caplog.text
    stream = (await app.client.get("/message-streams/broadcast", headers=server.headers)).json()
    assert stream["PausedAt"] is not None
    assert stream["PausedReason"].startswith("Spam complaint rate 50.00% (2 of 4 recipients in the last 7 days) is above 0.30%")
    await worker.hooks()
    paused = [h.json for h in receiver.hooks if h.json["RecordType"] == "StreamPaused"]
    assert len(paused) == 1
    assert (paused[0]["MessageStream"], paused[0]["SpamComplaints"], paused[0]["Recipients"]) == ("broadcast", 2, 4)
    assert paused[0]["Reason"] == stream["PausedReason"]
    refused = await app.client.post("/email", json=message(To="r4@example.net", **NEWS), headers=server.headers)
    assert (refused.status_code, refused.json()["ErrorCode"]) == (422, 1236)
    assert "is paused: Spam complaint rate" in refused.json()["Message"]
    # Other streams keep sending.
    assert (await app.client.post("/email", json=message(From="app@example.org"), headers=server.headers)).json()["ErrorCode"] == 0
    resumed = await app.client.patch("/message-streams/broadcast", json={"Paused": False}, headers=server.headers)
    assert (resumed.json()["PausedAt"], resumed.json()["PausedReason"]) == (None, "")
    assert (await send(app, server, "r4@example.net"))["ErrorCode"] == 0


async def test_a_stream_with_pause_on_complaints_off_keeps_sending(other_app: MakeApp) -> None:
    app = await other_app(complaint_pause_min_sent=1)
    server = await setup(app)
    edited = await app.client.patch("/message-streams/broadcast", json={"PauseOnComplaints": False}, headers=server.headers)
    assert edited.json()["PauseOnComplaints"] is False
    first = str((await send(app, server, "r0@example.net"))["MessageID"])
    await complain(app, first, "r0@example.net")
    assert (await send(app, server, "r1@example.net"))["ErrorCode"] == 0
