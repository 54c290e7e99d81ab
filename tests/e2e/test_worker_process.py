"""The worker as a process: killed with SIGKILL mid-delivery, its mail is delivered by another."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.compat.conftest import clean_live_api, free_port, live_api
from tests.conftest import ACCOUNT_TOKEN

__all__ = ["clean_live_api", "live_api"]
pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


class StallingSink:
    """Hangs on the first DATA (as a slow server would while a worker dies), accepts later ones."""

    def __init__(self) -> None:
        self.stalled = threading.Event()
        self.delivered: list[bytes] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if not self.stalled.is_set():
            self.stalled.set()
            await asyncio.sleep(30)
        self.delivered.append(bytes(envelope.original_content or b""))
        return "250 2.0.0 Ok"


@pytest.fixture
def sink() -> Iterator[tuple[StallingSink, int]]:
    handler, port = StallingSink(), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


def start_worker(database_url: str, relay_port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "OUTBOUND_RELAY": f"smtp://127.0.0.1:{relay_port}",
        "DELIVERY_LEASE_SECONDS": "2",
        "WORKER_POLL_SECONDS": "0.1",
        "DELIVERY_TIMEOUT_SECONDS": "60",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "api_service.worker"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def test_killed_worker_loses_nothing(clean_live_api: str, database_url: str, sink: tuple[StallingSink, int]) -> None:
    account = {"X-Postmark-Account-Token": ACCOUNT_TOKEN}
    token = httpx.post(f"{clean_live_api}/servers", json={"Name": "Kill"}, headers=account).json()["ApiTokens"][0]
    httpx.post(f"{clean_live_api}/senders", json={"FromEmail": "sender@example.com", "Name": "S"}, headers=account).raise_for_status()
    headers = {"X-Postmark-Server-Token": token}
    sent = httpx.post(
        f"{clean_live_api}/email",
        json={"From": "sender@example.com", "To": "ok@example.net", "Subject": "x", "TextBody": "x"},
        headers=headers,
    ).json()

    first = start_worker(database_url, sink[1])
    try:
        assert sink[0].stalled.wait(20), "the first worker never reached DATA"
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    second = start_worker(database_url, sink[1])
    try:
        # Only this test's message counts: mail another test left queued in the shared database
        # (a launcher stopped before its worker ran) may be delivered here too.
        def mine() -> list[bytes]:
            return [data for data in sink[0].delivered if sent["MessageID"].encode() in data]

        deadline = time.monotonic() + 30
        while not mine() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(mine()) == 1
        deadline = time.monotonic() + 10
        status = ""
        while status != "Sent" and time.monotonic() < deadline:
            status = httpx.get(f"{clean_live_api}/messages/outbound/{sent['MessageID']}/details", headers=headers).json()["Status"]
            time.sleep(0.2)
        assert status == "Sent"
    finally:
        second.terminate()
        second.wait(10)
