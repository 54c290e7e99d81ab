"""Helpers for the compat suite that reach below the API, for what no client can cause: a bounce, a
delivery, mail arriving from outside, a webhook attempt."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

import httpx
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import update

from api_service.bounces.service import record_bounce
from api_service.config import Settings
from api_service.data_removals.tasks import process_due
from api_service.db import create_engine, create_sessionmaker
from api_service.delivery.service import deliver_batch
from api_service.delivery.transport import Transport, parse_relay
from api_service.models import SenderSignature
from api_service.webhooks.tasks import schedule, send_due
from api_service.worker import OUTCOME_HANDLERS
from shared.constants import BounceType


def add_bounce(settings: Settings, server_id: int, bounce_type: BounceType, email: str, message_id: str) -> None:
    """Record a bounce of `message_id` as the bounce-report intake would."""

    async def run() -> None:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        async with create_sessionmaker(engine)() as session:
            await record_bounce(
                session=session,
                server_id=server_id,
                bounce_type=bounce_type,
                email=email,
                details="550 5.1.1 no such user",
                message_id=uuid.UUID(message_id),
                dump=b"raw",
                tag="t",
            )
            await session.commit()
        await engine.dispose()

    asyncio.run(run())


def send_inbound(mx_port: int, *, to: str, sender: str = "ann@example.com", subject: str = "Hello") -> str:
    """Mail `to` through the MX listener as a remote MTA would; the stored inbound message's id."""
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content("Hello from outside.")
    with smtplib.SMTP("127.0.0.1", mx_port, timeout=10) as mta:
        mta.ehlo("mx.sender.example")
        mta.mail(sender)
        mta.rcpt(to)
        code, text = mta.data(message.as_bytes(policy=SMTP_POLICY))
    assert code == 250, text
    return text.decode().rsplit(" ", 1)[1]


def post_webhooks(settings: Settings) -> int:
    """Run one batch of the worker's webhook step (inbound outcomes included); how many rows it handled."""

    async def run() -> int:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                return await send_due(
                    sessionmaker=create_sessionmaker(engine),
                    client=client,
                    retry_schedule=schedule(settings.webhook_retry_schedule),
                    outcome_handlers=OUTCOME_HANDLERS,
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def unconfirm_sender(settings: Settings, signature_id: int) -> None:
    """Make a signature wait for its confirmation link, as without SENDER_AUTO_CONFIRM."""

    async def run() -> None:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        async with create_sessionmaker(engine)() as session, session.begin():
            await session.execute(update(SenderSignature).where(SenderSignature.id == signature_id).values(confirmed=False))
        await engine.dispose()

    asyncio.run(run())


def run_data_removals(settings: Settings) -> None:
    """Run the worker's data removal rounds until none is left to do."""

    async def run() -> None:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        while await process_due(sessionmaker=create_sessionmaker(engine), settings=settings):
            pass
        await engine.dispose()

    asyncio.run(run())


def deliver_queued(settings: Settings, relay_port: int) -> int:
    """Run one batch of the delivery worker, relaying to an SMTP server on loopback; return how many it handled."""
    relay = parse_relay(f"smtp://127.0.0.1:{relay_port}")

    async def run() -> int:
        engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
        transport = Transport(relay=relay, helo="compat.test", timeout=5)
        try:
            return await deliver_batch(sessionmaker=create_sessionmaker(engine), transport=transport, settings=settings)
        finally:
            if transport.pool is not None:
                transport.pool.close()
            await asyncio.sleep(0)  # let the closed relay connections finish before the loop ends
            await engine.dispose()

    return asyncio.run(run())


class Sink:
    """An SMTP server that takes every recipient except `hard…@`, which it rejects as unknown (550 5.1.1),
    and keeps what it received."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:
        if address.split("@")[0].lower().startswith("hard"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.received.append((list(envelope.rcpt_tos), bytes(envelope.original_content or b"")))
        return "250 2.0.0 Ok: queued as COMPAT1"
