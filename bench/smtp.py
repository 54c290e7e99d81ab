"""SMTP accept: authenticated sessions, reused and one per message, beside a no-op aiosmtpd ceiling
and, when Postfix is installed, a private Postfix with a durable queue as a reference."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import httpx
import psutil

from bench.loadgen import LoadResult
from bench.procs import Meter, free_port, postgres_processes, start
from bench.rest import Row, measured

# Every message gets its own Message-ID, as real clients send: the same bytes to the same
# recipients again are a retry, which the API answers from its idempotency record without storing.
ID_PLACEHOLDER = b"bench-0000000000000000"


def _unique(template: bytes, number: int) -> bytes:
    return template.replace(ID_PLACEHOLDER, b"bench-%016d" % number, 1)


def _message() -> bytes:
    message = EmailMessage()
    message["From"] = "Bench <bench@bench.example>"
    message["To"] = "ann@example.net, bob@example.net"
    message["Subject"] = "Your order has shipped"
    message["X-PM-Tag"] = "shipping"
    message["Message-ID"] = f"<{ID_PLACEHOLDER.decode()}@bench.example>"
    message.set_content("Hello Ann,\n\nyour order #1234 has shipped.\n" * 20)
    message.add_alternative("<p>Hello Ann,</p><p>your order has shipped.</p>" * 20, subtype="html")
    return message.as_bytes()


async def _load(*, port: int, token: str | None, concurrency: int, seconds: float, total: int, reuse: bool) -> LoadResult:
    template = _message()
    sent = time.time_ns() // 1000  # each run numbers its messages afresh (16 digits until 2286)
    result = LoadResult(requests=0, errors=0, seconds=0.0)
    remaining = total
    deadline = time.perf_counter() + seconds

    async def connect() -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False, timeout=30)
        await client.connect()
        if token is not None:
            await client.login(token, token)
        return client

    async def worker() -> None:
        nonlocal remaining, sent
        client = await connect() if reuse else None
        try:
            while remaining > 0 and time.perf_counter() < deadline:
                remaining -= 1
                sent += 1
                data = _unique(template, sent)
                started = time.perf_counter()
                if client is None:
                    one = await connect()
                    try:
                        _, reply = await one.sendmail("bench@bench.example", ["ann@example.net", "bob@example.net"], data)
                    finally:
                        await one.quit()
                else:
                    _, reply = await client.sendmail("bench@bench.example", ["ann@example.net", "bob@example.net"], data)
                result.latencies.append(time.perf_counter() - started)
                result.requests += 1
                if not reply.startswith("2.0.0"):
                    result.errors += 1
        except aiosmtplib.SMTPException:
            result.errors += 1
            if client is not None:
                client.close()
                client = None
        finally:
            if client is not None and client.is_connected:
                with contextlib.suppress(aiosmtplib.SMTPException):
                    await client.quit()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def _row(name: str, concurrency: int, result: LoadResult, meter: Meter) -> Row:
    return measured(name, concurrency, messages=result.requests, seconds=result.seconds, meter=meter, errors=result.errors, result=result)


def run(*, database_url: str, quick: bool) -> list[Row]:
    seconds = 1.5 if quick else 10.0
    total = 60 if quick else 1_000_000
    cases = [(16, True), (64, True), (16, False)] if not quick else [(4, True), (4, False)]
    workers = "1" if quick else str(max(1, os.cpu_count() or 1))
    api_port, smtp_port, noop_port = free_port(), free_port(), free_port()
    account = "bench-account-token"
    api = start(
        "api",
        ["-m", "api_service"],
        {"DATABASE_URL": database_url, "ACCOUNT_TOKEN": account, "API_PORT": str(api_port), "API_WORKERS": workers},
        health_url=f"http://127.0.0.1:{api_port}/health",
    )
    rows: list[Row] = []
    try:
        created = httpx.post(
            f"http://127.0.0.1:{api_port}/servers",
            json={"Name": f"bench-smtp-{os.getpid()}", "SmtpApiActivated": True},
            headers={"X-Postmark-Account-Token": account},
        )
        created.raise_for_status()
        token = created.json()["ApiTokens"][0]
        httpx.post(
            f"http://127.0.0.1:{api_port}/senders",
            json={"FromEmail": "bench@bench.example", "Name": "Bench"},
            headers={"X-Postmark-Account-Token": account},
        )
        gateway = start(
            "smtp",
            ["-m", "smtp_service"],
            # The gateway's credential on /internal/smtp/*: the API has no INTERNAL_TOKEN, so the account token.
            {"SMTP_PORT": str(smtp_port), "API_URL": f"http://127.0.0.1:{api_port}", "ACCOUNT_TOKEN": account},
            port=smtp_port,
        )
        try:
            for concurrency, reuse in cases:
                groups = {
                    "api": [api.tree()[0]],
                    "smtp": [gateway.tree()[0]],
                    "postgres": postgres_processes(),
                    "loadgen": [psutil.Process()],
                }
                with Meter(groups) as meter:
                    result = asyncio.run(
                        _load(port=smtp_port, token=token, concurrency=concurrency, seconds=seconds, total=total, reuse=reuse)
                    )
                rows.append(
                    _row("SMTP accept, " + ("reused connections" if reuse else "connection per message"), concurrency, result, meter)
                )
        finally:
            gateway.stop()
    finally:
        api.stop()
    noop = start("noop-smtp", ["-m", "bench.noop_smtp", str(noop_port)], {}, port=noop_port)
    try:
        for row, (concurrency, reuse) in zip(rows, cases, strict=True):
            result = asyncio.run(_load(port=noop_port, token="same", concurrency=concurrency, seconds=seconds, total=total, reuse=reuse))
            row.ceiling_rate = result.rate
    finally:
        noop.stop()
    return rows + _postfix_rows(
        quick=quick, seconds=seconds, total=total, ceilings=dict(zip(cases, [r.ceiling_rate for r in rows], strict=True))
    )


# --- The Postfix reference ------------------------------------------------------------------------

POSTFIX = Path("/usr/sbin/postfix")
SMTP_SOURCE = Path("/usr/sbin/smtp-source")
POSTFIX_MASTER_CF = Path("/etc/postfix/master.cf")
# Every message is accepted into the queue (fsync'd before the 250, Postfix's default) and then
# discarded, so what is measured is the durable accept, as for Postgate. No rate limits, no DNS.
POSTFIX_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
myhostname = bench.localhost
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
default_transport = discard
local_transport = discard
relay_transport = discard
smtputf8_enable = no
biff = no
disable_dns_lookups = yes
smtp_host_lookup = native
smtpd_peername_lookup = no
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 200
"""


def _postfix_missing() -> str | None:
    """Why the Postfix rows cannot run here, or None."""
    if not (POSTFIX.exists() and SMTP_SOURCE.exists() and POSTFIX_MASTER_CF.exists()):
        return "postfix not installed (apt-get install postfix)"
    if os.geteuid() != 0:
        return "a private Postfix instance needs root"
    return None


@contextlib.contextmanager
def _postfix(port: int) -> Iterator[psutil.Process]:
    """A private Postfix listening on a loopback port, with its configuration and queue in a
    temporary directory (the system's instance is left alone); yields its master process."""
    root = Path(tempfile.mkdtemp(prefix="postgate-bench-postfix-"))
    root.chmod(0o755)
    etc, queue, data = root / "etc", root / "queue", root / "data"
    for directory in (etc, queue, data):
        directory.mkdir()
    shutil.chown(data, user="postfix")
    (etc / "main.cf").write_text(POSTFIX_MAIN_CF.format(queue=queue, data=data))
    master_cf = re.sub(r"(?m)^smtp\s+inet\s.*$", f"127.0.0.1:{port} inet n - n - - smtpd", POSTFIX_MASTER_CF.read_text())
    (etc / "master.cf").write_text(master_cf)
    master: psutil.Process | None = None
    try:
        subprocess.run([str(POSTFIX), "-c", str(etc), "check"], check=True, timeout=60, capture_output=True)
        subprocess.run([str(POSTFIX), "-c", str(etc), "start"], check=True, timeout=60, capture_output=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _listening(port):
            time.sleep(0.1)
        master = psutil.Process(int((queue / "pid" / "master.pid").read_text().split()[0]))
        yield master
    finally:
        subprocess.run([str(POSTFIX), "-c", str(etc), "stop"], check=False, timeout=60, capture_output=True)
        if master is not None:
            psutil.wait_procs([master], timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _postfix_rows(*, quick: bool, seconds: float, total: int, ceilings: dict[tuple[int, bool], float]) -> list[Row]:
    """The same client against Postfix (no AUTH: Postfix relays for loopback), and Postfix's own
    load generator, `smtp-source -d -s 16`. Skipped, with a row that says why, without Postfix."""
    missing = _postfix_missing()
    if missing is not None:
        return [Row("Postfix reference: skipped, " + missing, 0, 0, 0.0, 0.0, 0.0, 0.0, {}, {}, 0)]
    rows: list[Row] = []
    port = free_port()
    size = len(_message())
    with _postfix(port) as master:
        for concurrency, reuse in ceilings:
            with Meter({"postfix": [master], "loadgen": [psutil.Process()]}) as meter:
                result = asyncio.run(_load(port=port, token=None, concurrency=concurrency, seconds=seconds, total=total, reuse=reuse))
            name = "Postfix reference (discard, no AUTH), " + ("reused connections" if reuse else "connection per message")
            row = _row(name, concurrency, result, meter)
            row.ceiling_rate = ceilings[(concurrency, reuse)]
            rows.append(row)
        sessions = 4 if quick else 16
        count = 200 if quick else 15_000
        with Meter({"postfix": [master], "loadgen": [psutil.Process()]}) as meter:
            started = time.perf_counter()
            done = subprocess.run(
                [
                    str(SMTP_SOURCE),
                    "-d",
                    "-s",
                    str(sessions),
                    "-m",
                    str(count),
                    "-l",
                    str(size),
                    "-f",
                    "bench@bench.example",
                    "-t",
                    "ann@example.net",
                    f"127.0.0.1:{port}",
                ],
                check=False,
                timeout=120,
                capture_output=True,
            )
            elapsed = time.perf_counter() - started
        rows.append(
            measured(
                f"Postfix reference (discard), smtp-source -d -s {sessions}",
                sessions,
                messages=count,
                seconds=elapsed,
                meter=meter,
                errors=0 if done.returncode == 0 else 1,
            )
        )
    return rows
