"""Per-destination shaping over real sockets: MX servers on 127.x.y.z:25 that allow few connections
and answer 421 beyond, a DNS server of our own, one or two workers.

What they prove: every message is delivered exactly once through an MX that takes 2 connections,
with few refused connections and many messages per connection (the workers learn the limit and
reuse connections); a throttled destination does not hold up another; two workers together stay
within a destination's connection limit; a throttling reply suspends the destination without
spending the recipients' attempts.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import select

from api_service.config import Settings
from api_service.delivery.transport import SMTP_PORT, transport_from_settings
from api_service.deps import get_settings_dep
from api_service.models import MessageRecipient
from tests.api.conftest import Worker
from tests.api.core.dns_server import Zone
from tests.api.delivery.limited_mx import LimitedMx
from tests.api.delivery.test_mx import loopback_address, mx_settings, port_25, zone  # noqa: F401 - fixtures
from tests.factories import ServerHandle, message

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


@pytest_asyncio.fixture
async def mx(port_25: None) -> AsyncIterator[list[LimitedMx]]:  # noqa: F811 - the fixture
    started: list[LimitedMx] = []
    yield started
    for server in started:
        await server.stop()


async def limited(started: list[LimitedMx], dns: tuple[Zone, str], domain: str, **limits: float | str) -> LimitedMx:
    """A limited MX for `domain` on a fresh loopback address."""
    server = LimitedMx(**limits)  # type: ignore[arg-type]
    ip = loopback_address()
    await server.start(ip, SMTP_PORT)
    started.append(server)
    dns[0].mx(domain, (10, f"mx.{domain}"))
    dns[0].a(f"mx.{domain}", ip)
    return server


def worker_for(app: FastAPI, settings: Settings, dns: tuple[Zone, str], policy: Path | None = None, **update: object) -> Worker:
    worker_settings = mx_settings(settings, dns[1]).model_copy(
        update={"delivery_policy_file": str(policy) if policy else "", "delivery_lease_seconds": 5.0, **update}
    )
    return Worker(app=app, settings=worker_settings, transport=transport_from_settings(worker_settings, helo="postgate.test"))


async def queue(client: httpx.AsyncClient, server: ServerHandle, recipients: list[str]) -> None:
    for start in range(0, len(recipients), 500):
        batch = [message(From="App <app@example.org>", To=to) for to in recipients[start : start + 500]]
        response = await client.post("/email/batch", json=batch, headers=server.headers)
        assert response.status_code == 200, response.text
        assert all(r["ErrorCode"] == 0 for r in response.json())


async def run_until(workers: list[Worker], done: object, *, seconds: float) -> None:
    """Each worker's delivery loop (as the worker process runs it) until `done()` or the time is up."""
    deadline = time.monotonic() + seconds

    async def loop(worker: Worker) -> None:
        while not done() and time.monotonic() < deadline:  # type: ignore[operator]
            if not await worker.deliver():
                await asyncio.sleep(0.05)

    try:
        await asyncio.gather(*(loop(w) for w in workers))
    finally:
        for worker in workers:
            worker.transport.close()


async def statuses(app: FastAPI) -> Counter[str]:
    async with app.state.sessionmaker() as session:
        return Counter((await session.execute(select(MessageRecipient.status))).scalars())


class TestConnectionLimit:
    async def test_300_messages_through_two_connections_are_delivered_once_over_reused_connections(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],  # noqa: F811 - the fixture
        mx: list[LimitedMx],
    ) -> None:
        target = await limited(mx, zone, "example.net", max_connections=2)
        recipients = [f"r{n}@example.net" for n in range(300)]
        await queue(client, server, recipients)
        worker = worker_for(app, settings, zone)
        started = time.monotonic()
        await run_until([worker], lambda: len(target.received) >= 300 and target.open == 0, seconds=120)
        assert sorted(r for d in target.received for r in d.rcpt_tos) == sorted(recipients)  # each exactly once
        print(f"300 messages: {time.monotonic() - started:.1f} s, {target.accepted} connections, {target.refused} refused")
        assert time.monotonic() - started < 120
        assert target.refused < 15
        assert target.peak <= 2
        assert 300 / target.accepted >= 5
        assert (await statuses(app)) == Counter({"delivered": 300})
        response = await client.get("/delivery/destinations", headers={"X-Postmark-Account-Token": settings.account_token})
        assert response.status_code == 200, response.text
        [destination] = [d for d in response.json()["Destinations"] if d["Destination"] == "mx:mx.example.net"]
        assert destination["Connections"] <= 2  # learned from the 421s
        assert destination["Delivered"] == 300

    async def test_two_workers_together_stay_within_the_limit(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],  # noqa: F811 - the fixture
        mx: list[LimitedMx],
        tmp_path: Path,
    ) -> None:
        policy = tmp_path / "policy.toml"
        policy.write_text('[destinations."mx:mx.example.net"]\nconnections = 2\nmessages_per_connection = 1000\n')
        target = await limited(mx, zone, "example.net", max_connections=2, delay=0.01)
        recipients = [f"r{n}@example.net" for n in range(120)]
        await queue(client, server, recipients)
        workers = [worker_for(app, settings, zone, policy, delivery_batch_size=20) for _ in range(2)]
        await run_until(workers, lambda: len(target.received) >= 120 and target.open == 0, seconds=60)
        assert sorted(r for d in target.received for r in d.rcpt_tos) == sorted(recipients)
        assert target.peak <= 2
        assert target.refused <= 1


class TestNoHeadOfLineBlocking:
    async def test_a_throttled_destination_does_not_delay_another(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],  # noqa: F811 - the fixture
        mx: list[LimitedMx],
        tmp_path: Path,
    ) -> None:
        policy = tmp_path / "policy.toml"
        policy.write_text('[destinations."mx:mx.slow.example"]\nconnections = 1\nper_second = 2\n')
        slow = await limited(mx, zone, "slow.example", max_connections=1)
        fast = await limited(mx, zone, "fast.example", max_connections=5)
        await queue(client, server, [f"s{n}@slow.example" for n in range(200)])
        await queue(client, server, [f"f{n}@fast.example" for n in range(20)])
        worker = worker_for(app, settings, zone, policy, delivery_batch_size=50)
        started = time.monotonic()
        await run_until([worker], lambda: len(fast.received) >= 20, seconds=20)
        assert len(fast.received) == 20
        assert time.monotonic() - started < 5
        assert len(slow.received) <= 4  # its rate: 2 a second
        counts = await statuses(app)
        assert counts["delivered"] == 20 + len(slow.received)
        assert counts["queued"] + counts["deferred"] == 200 - len(slow.received)


class TestLearning:
    async def test_throttling_reply_suspends_without_spending_attempts(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],  # noqa: F811 - the fixture
        mx: list[LimitedMx],
    ) -> None:
        target = await limited(
            mx, zone, "example.net", throttle_mail="451 4.7.28 Our system has detected an unusual rate, try again in 30 seconds"
        )
        await queue(client, server, ["a@example.net", "b@example.net"])
        worker = worker_for(app, settings, zone)
        try:
            assert await worker.deliver() == 2
            assert target.received == []
            async with app.state.sessionmaker() as session:
                rows = (await session.execute(select(MessageRecipient.status, MessageRecipient.attempts))).all()
            assert sorted(rows) == [("deferred", 0), ("deferred", 0)]
            assert await worker.deliver() == 0  # suspended: its mail waits
            response = await client.get("/delivery/destinations", headers={"X-Postmark-Account-Token": settings.account_token})
            [destination] = [d for d in response.json()["Destinations"] if d["Destination"] == "mx:mx.example.net"]
            assert destination["State"] == "suspended"
            assert destination["SuspendedUntil"] is not None
            assert destination["Queued"] == 2
            assert "4.7.28" in destination["LastReply"]
            scraped = (await client.get("/metrics")).text
            assert 'postgate_delivery_destination_suspended{destination="mx:mx.example.net"} 1.0' in scraped
            assert 'postgate_delivery_destination_queued{destination="mx:mx.example.net"} 2.0' in scraped
        finally:
            worker.transport.close()


class TestSourceIps:
    async def test_connections_leave_from_the_pool_with_each_ip_helo_and_a_listed_ip_fails_over(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],  # noqa: F811 - the fixture
        mx: list[LimitedMx],
        tmp_path: Path,
    ) -> None:
        listed, good = loopback_address(), loopback_address()
        policy = tmp_path / "policy.toml"
        policy.write_text(
            f"""
            [pools.transactional]
            ips = [{{ address = "{listed}", helo = "mta1.postgate.test" }}, {{ address = "{good}", helo = "mta2.postgate.test" }}]
            [pool_for]
            default = "transactional"
            """
        )
        target = await limited(mx, zone, "example.net", max_connections=5)
        target.refuse_peers[listed] = f"554 5.7.1 Service unavailable; Client host [{listed}] blocked using zen.spamhaus.org"
        recipients = [f"r{n}@example.net" for n in range(10)]
        await queue(client, server, recipients)
        worker = worker_for(app, settings, zone, policy)
        await run_until([worker], lambda: len(target.received) >= 10 and target.open == 0, seconds=30)
        assert sorted(r for d in target.received for r in d.rcpt_tos) == sorted(recipients)
        assert {d.peer for d in target.received} == {good}
        assert target.helos == {"mta2.postgate.test"}
        assert (await statuses(app)) == Counter({"delivered": 10})

    async def test_warmup_allowance_holds_and_the_rest_waits(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],  # noqa: F811 - the fixture
        mx: list[LimitedMx],
        tmp_path: Path,
    ) -> None:
        new_ip = loopback_address()
        policy = tmp_path / "policy.toml"
        policy.write_text(
            f"""
            [pools.new]
            ips = [{{ address = "{new_ip}", helo = "mta.postgate.test", warmup_since = {datetime.now(UTC).date().isoformat()} }}]
            [pool_for]
            default = "new"
            [warmup]
            default = [7, 14]
            """
        )
        target = await limited(mx, zone, "example.net", max_connections=5)
        await queue(client, server, [f"r{n}@example.net" for n in range(20)])
        worker = worker_for(app, settings, zone, policy)
        await run_until([worker], lambda: False, seconds=3)
        assert len(target.received) == 7
        assert {d.peer for d in target.received} == {new_ip}
        counts = await statuses(app)
        assert counts == Counter({"delivered": 7, "deferred": 13})
        async with app.state.sessionmaker() as session:
            waiting = (await session.execute(select(MessageRecipient).where(MessageRecipient.status == "deferred"))).scalars().all()
        assert all(r.attempts == 0 and "warm-up allowance" in r.last_response for r in waiting)
        assert all(r.next_attempt_at is not None and r.next_attempt_at.date() > datetime.now(UTC).date() for r in waiting)
        app.dependency_overrides[get_settings_dep] = lambda: worker.settings  # the API reads the same policy file
        response = await client.get("/delivery/source-ips", headers={"X-Postmark-Account-Token": settings.account_token})
        del app.dependency_overrides[get_settings_dep]
        assert response.status_code == 200, response.text
        [ip] = response.json()["SourceIps"]
        assert (ip["Address"], ip["Pool"], ip["Helo"], ip["WarmupDay"]) == (new_ip, "new", "mta.postgate.test", 1)
        assert ip["Today"] == [{"Destination": "mx:mx.example.net", "SentToday": 7, "AllowanceToday": 7}]


class TestConnectionReuse:
    async def test_a_server_that_ends_a_connection_after_n_messages_gets_a_new_one_without_failing_anyone(
        self,
        app: FastAPI,
        settings: Settings,
        client: httpx.AsyncClient,
        server: ServerHandle,
        zone: tuple[Zone, str],  # noqa: F811 - the fixture
        mx: list[LimitedMx],
        tmp_path: Path,
    ) -> None:
        policy = tmp_path / "policy.toml"
        policy.write_text('[destinations."mx:mx.example.net"]\nconnections = 1\nmessages_per_connection = 1000\n')
        target = await limited(mx, zone, "example.net", max_connections=1, max_per_connection=10)
        recipients = [f"r{n}@example.net" for n in range(30)]
        await queue(client, server, recipients)
        worker = worker_for(app, settings, zone, policy)
        await run_until([worker], lambda: len(target.received) >= 30 and target.open == 0, seconds=30)
        assert sorted(r for d in target.received for r in d.rcpt_tos) == sorted(recipients)
        assert target.per_connection[:3] == [10, 10, 10]
        async with app.state.sessionmaker() as session:
            rows = (await session.execute(select(MessageRecipient.status, MessageRecipient.attempts))).all()
        assert set(rows) == {("delivered", 1)}
