"""Helpers for end-to-end tests: free loopback ports and the launcher as a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
INBOUND_DOMAIN = "inbound.e2e.test"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class RunningPostgate:
    api_url: str
    smtp_port: int
    inbound_port: int
    account_token: str
    process: subprocess.Popen[bytes]


def wait_healthy(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"postgate exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("postgate did not become healthy")


@pytest.fixture
def postgate(database_url: str, tmp_path: Path) -> Iterator[RunningPostgate]:
    """`make run` without the install step: the launcher with its api, smtp and worker."""
    api_port, smtp_port, inbound_port, dead_port = free_port(), free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "ACCOUNT_TOKEN": "e2e-account-token",
        "API_PORT": str(api_port),
        "SMTP_PORT": str(smtp_port),
        "SMTP_INBOUND_PORT": str(inbound_port),
        "INBOUND_DOMAIN": INBOUND_DOMAIN,
        # Inbound hooks retried at once (two retries), polled often; the receiver is on loopback.
        "INBOUND_HOOK_RETRY_SCHEDULE": "0,0",
        "WORKER_POLL_SECONDS": "0.05",
        "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
        # Nothing listens there: mail stays queued and never leaves this machine.
        "OUTBOUND_RELAY": f"smtp://127.0.0.1:{dead_port}",
    }
    log = (tmp_path / "postgate.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "api_service.devtools"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{api_port}"
        wait_healthy(url, process)
        yield RunningPostgate(
            api_url=url, smtp_port=smtp_port, inbound_port=inbound_port, account_token="e2e-account-token", process=process
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
