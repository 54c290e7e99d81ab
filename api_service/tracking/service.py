"""What a tracking URL does when it is fetched: record the open or the click (and fire their
webhooks), or suppress the recipient who unsubscribes. A token that does not open with its
message's server key does nothing: the caller answers as for any other token.

This package is the only writer of opens and clicks (`store_open`, `store_click`); their events
go to the message log through `messages`.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.geoip import NOWHERE, Geo
from api_service.mail.parse import parse_head
from api_service.mail.useragent import ClientInfo, parse_user_agent
from api_service.messages import service as messages
from api_service.models import Message, MessageClick, MessageOpen, Server
from api_service.servers import service as servers
from api_service.streams import service as streams
from api_service.suppressions import service as suppressions
from api_service.tracking import machines, repository, tokens
from api_service.tracking.copies import UNSUBSCRIBE_MAILBOX
from api_service.tracking.repository import ActivityFilter
from api_service.webhooks import payloads
from api_service.webhooks import service as webhooks
from shared.constants import ClickLocation, MessageEventType, SuppressionOrigin, SuppressionReason, WebhookTrigger
from shared.schemas.webhook_payloads import ClickWebhook, OpenWebhook

__all__ = ["ActivityFilter"]

MAILED_TOKEN = re.compile(r"unsubscribe\s+([A-Za-z0-9_-]{40,4096})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Resolved:
    """A token that opened: what it says, its server, and its message while that is kept (None
    once retention or a data removal deleted it: a version 2 token opens without it). The server
    is None once it was deleted: its retired key still opens the token, so a link still redirects
    and an unsubscribe URL still answers, with nothing recorded and nobody left to suppress for."""

    server: Server | None
    payload: tokens.Payload
    message: Message | None

    @property
    def stream(self) -> str:
        return self.message.message_stream if self.message is not None else self.payload.stream

    @property
    def recordable(self) -> bool:
        """Opens and clicks are recorded only on a message still kept, for an address it still
        goes to: a data removal replaced a removed address in its recipients, so an old token of
        that address records nothing."""
        if self.message is None:
            return False
        return self.payload.recipient.lower() in {r.lower() for r in self.message.recipients}


async def _resolve_v2(*, session: AsyncSession, token: str) -> Resolved | None:
    server_id = tokens.server_id_of(token)
    if server_id is None:
        return None
    server = (await servers.get_servers(session=session, ids={server_id})).get(server_id)
    if server is None:
        retired = await servers.retired_tracking_secret(session=session, server_id=server_id)
        payload = tokens.unseal_v2(retired, token) if retired is not None else None
        return Resolved(server=None, payload=payload, message=None) if payload is not None else None
    payload = tokens.unseal_v2(server.tracking_secret, token)
    if payload is None:
        return None
    message = await messages.get_message_summary(session=session, message_id=payload.message_id)
    return Resolved(server=server, payload=payload, message=message if message is not None and message.server_id == server.id else None)


async def _resolve_v1(*, session: AsyncSession, token: str) -> Resolved | None:
    message_id = tokens.message_id_of(token)
    if message_id is None:
        return None
    message = await messages.get_message_summary(session=session, message_id=message_id)
    if message is None:
        return None
    server = (await servers.get_servers(session=session, ids={message.server_id})).get(message.server_id)
    if server is None:
        return None
    payload = tokens.unseal(server.tracking_secret, token)
    if payload is None or payload.message_id != message.id:
        return None
    return Resolved(server=server, payload=payload, message=message)


async def resolve(*, session: AsyncSession, token: str, kind: tokens.Kind) -> Resolved | None:
    """What `token` says, when it was sealed by its server for `kind`: version 2 first (its key
    found from the server id it carries), else version 1 (through its message)."""
    found = await _resolve_v2(session=session, token=token) or await _resolve_v1(session=session, token=token)
    return found if found is not None and found.payload.kind is kind else None


@dataclass(frozen=True, slots=True)
class Hit:
    """Who fetched a tracking URL, and how."""

    user_agent: str
    ip: str
    method: str = "GET"
    geo: Geo = NOWHERE


async def record_open(*, session: AsyncSession, token: str, hit: Hit) -> bool:
    """Record an open and queue its webhooks; False for a token that is not ours or records nothing.

    A hook with PostFirstOpenOnly gets a recipient's first open by a person (beyond Postmark: a proxy's or a
    scanner's fetch before it does not count, and none at all while only machines have fetched)."""
    found = await resolve(session=session, token=token, kind=tokens.Kind.OPEN)
    if found is None or found.server is None or found.message is None or not found.recordable:
        return False
    message = found.message
    verdict = machines.classify(hit=machines.Hit.OPEN, method=hit.method, user_agent=hit.user_agent, ip=hit.ip)
    row = await store_open(
        session=session,
        message=message,
        recipient=found.payload.recipient,
        client=parse_user_agent(hit.user_agent),
        hit=hit,
        verdict=verdict,
        at=datetime.now(UTC),
    )
    await webhooks.event_recorded(
        session=session,
        server=found.server,
        stream=message.message_stream,
        trigger=WebhookTrigger.OPEN,
        payload=payloads.open_payload(row, metadata=message.metadata_),
        first_open=row.first_human,
    )
    return True


async def classify_click(*, session: AsyncSession, message: Message, recipient: str, link: str, hit: Hit, at: datetime) -> machines.Verdict:
    """The machine rules for a click, with the two facts they need beyond the request: how long after delivery,
    and how many other links of the message the recipient clicked just before."""
    table = machines.rules()
    # The rules that need only the request first (as for an open): a known scanner costs no look-up.
    quick = machines.classify(hit=machines.Hit.OPEN, method=hit.method, user_agent=hit.user_agent, ip=hit.ip, table=table)
    if quick.machine:
        return quick
    delivered = await messages.delivered_at(session=session, message_id=message.id, email=recipient)
    window = timedelta(seconds=table.behaviour.burst_window_seconds)
    others = await repository.other_links_clicked_since(
        session=session, message_id=message.id, recipient=recipient, link_sha256=_link_key(link), since=at - window
    )
    return machines.classify(
        hit=machines.Hit.CLICK,
        method=hit.method,
        user_agent=hit.user_agent,
        ip=hit.ip,
        seconds_since_delivery=(at - delivered).total_seconds() if delivered is not None else None,
        other_links_just_before=others,
        table=table,
    )


def _link_key(link: str) -> str:
    return hashlib.sha256(link.encode()).hexdigest()


async def follow_link(*, session: AsyncSession, token: str, hit: Hit) -> str | None:
    """Record a click and return where it goes: only ever a URL sealed into this message. Once
    the message is gone (or the address removed) the link still goes there, unrecorded."""
    found = await resolve(session=session, token=token, kind=tokens.Kind.CLICK)
    if found is None or found.payload.location is None:
        return None
    message = found.message
    if found.server is None or message is None or not found.recordable:
        return found.payload.url
    now = datetime.now(UTC)
    recipient, link = found.payload.recipient, found.payload.url
    verdict = await classify_click(session=session, message=message, recipient=recipient, link=link, hit=hit, at=now)
    row = await store_click(
        session=session,
        message=message,
        recipient=recipient,
        link=link,
        location=found.payload.location,
        client=parse_user_agent(hit.user_agent),
        hit=hit,
        verdict=verdict,
        at=now,
    )
    # Postmark sends one Click webhook per link and recipient; beyond Postmark, a person's first click of a link
    # that a scanner followed first is sent too (its `Machine` says which is which).
    if row.first_click or row.first_human:
        await webhooks.event_recorded(
            session=session,
            server=found.server,
            stream=message.message_stream,
            trigger=WebhookTrigger.CLICK,
            payload=payloads.click_payload(row, metadata=message.metadata_),
        )
    return found.payload.url


# --- the opens and clicks tables ------------------------------------------------------------------


def _reader(message: Message, recipient: str, client: ClientInfo, hit: Hit, verdict: machines.Verdict, at: datetime) -> dict[str, Any]:
    return {
        "server_id": message.server_id,
        "message_id": message.id,
        "message_stream": message.message_stream,
        "tag": message.tag,
        "recipient": recipient,
        "user_agent": client.user_agent,
        "client_name": client.client_name,
        "client_company": client.client_company,
        "client_family": client.client_family,
        "os_name": client.os_name,
        "os_company": client.os_company,
        "os_family": client.os_family,
        "platform": client.platform.value,
        "ip": hit.ip[:45],
        "country_iso": hit.geo.country_iso,
        "country": hit.geo.country[:100],
        "region_iso": hit.geo.region_iso,
        "region": hit.geo.region[:100],
        "city": hit.geo.city[:100],
        "coords": hit.geo.coords,
        "machine": verdict.machine,
        "machine_reason": verdict.reason[:40],
        "created_at": at,
    }


async def store_open(
    *,
    session: AsyncSession,
    message: Message,
    recipient: str,
    client: ClientInfo,
    hit: Hit,
    at: datetime,
    verdict: machines.Verdict = machines.PERSON,
) -> MessageOpen:
    """An open with its `Opened` event; `first_open` on the returned row says whether it was the recipient's first,
    `first_human` whether it was a person's first."""
    row = await repository.insert_open(session=session, values=_reader(message, recipient, client, hit, verdict, at) | {"read_seconds": 0})
    await messages.add_event(
        session=session,
        message_id=message.id,
        recipient=recipient,
        type_=MessageEventType.OPENED,
        details={"Summary": f"Email opened with {client.client_name} on {client.os_name}"},
    )
    return row


async def store_click(
    *,
    session: AsyncSession,
    message: Message,
    recipient: str,
    link: str,
    location: ClickLocation,
    client: ClientInfo,
    hit: Hit,
    at: datetime,
    verdict: machines.Verdict = machines.PERSON,
) -> MessageClick:
    """A click with its `LinkClicked` event; `first_click` says whether the recipient followed this link before."""
    values = _reader(message, recipient, client, hit, verdict, at) | {
        "click_location": location.value,
        "original_link": link,
        "link_sha256": _link_key(link),
    }
    row = await repository.insert_click(session=session, values=values)
    await messages.add_event(
        session=session,
        message_id=message.id,
        recipient=recipient,
        type_=MessageEventType.LINK_CLICKED,
        details={"Summary": f"Link clicked with {client.client_name} on {client.os_name}", "Link": link, "ClickLocation": location.value},
    )
    return row


async def list_opens(
    *, session: AsyncSession, server_id: int, filters: ActivityFilter, count: int, offset: int
) -> tuple[int, list[MessageOpen]]:
    return await repository.list_activity(
        session=session, model=MessageOpen, server_id=server_id, filters=filters, count=count, offset=offset
    )


async def list_clicks(
    *, session: AsyncSession, server_id: int, filters: ActivityFilter, count: int, offset: int
) -> tuple[int, list[MessageClick]]:
    return await repository.list_activity(
        session=session, model=MessageClick, server_id=server_id, filters=filters, count=count, offset=offset
    )


@dataclass(frozen=True, slots=True)
class UnsubscribeTarget:
    recipient: str
    stream_name: str


async def unsubscribe_target(*, session: AsyncSession, token: str) -> UnsubscribeTarget | None:
    """Who an unsubscribe URL is for, to ask them to confirm (a GET changes nothing: link
    scanners fetch every URL in a message)."""
    found = await resolve(session=session, token=token, kind=tokens.Kind.UNSUBSCRIBE)
    if found is None:
        return None
    return await _target(session=session, found=found)


async def _target(*, session: AsyncSession, found: Resolved) -> UnsubscribeTarget:
    stream = None if found.server is None else await streams.get_stream(session=session, server_id=found.server.id, stream_id=found.stream)
    return UnsubscribeTarget(recipient=found.payload.recipient, stream_name=stream.name if stream else found.stream)


async def unsubscribe(*, session: AsyncSession, token: str) -> UnsubscribeTarget | None:
    """Suppress the recipient on the message's stream (ManualSuppression, Origin Recipient);
    the suppressions service fires SubscriptionChange. Unsubscribing twice changes nothing."""
    found = await resolve(session=session, token=token, kind=tokens.Kind.UNSUBSCRIBE)
    if found is None:
        return None
    if found.server is None:
        # The server is gone and sends nothing more: there is no list left to be taken off.
        return await _target(session=session, found=found)
    message, recipient = found.message, found.payload.recipient
    context = suppressions.MessageContext(message_id=found.payload.message_id)
    if message is not None:
        context = suppressions.MessageContext(message_id=message.id, tag=message.tag, metadata=message.metadata_)
    added = await suppressions.suppress(
        session=session,
        server=found.server,
        stream=found.stream,
        email=recipient,
        reason=SuppressionReason.MANUAL_SUPPRESSION,
        origin=SuppressionOrigin.RECIPIENT,
        context=context,
    )
    if added and message is not None:
        await messages.record_subscription_change(
            session=session, message_id=message.id, recipient=recipient, origin=SuppressionOrigin.RECIPIENT, suppress=True
        )
    return await _target(session=session, found=found)


def is_unsubscribe_address(address: str) -> bool:
    return address.strip().strip("<>").partition("@")[0].lower() == UNSUBSCRIBE_MAILBOX


async def unsubscribe_by_mail(*, session: AsyncSession, rcpt_to: list[str], raw: bytes) -> int:
    """A mail to the List-Unsubscribe mailto: address (through the return-path listener): the
    token is in its subject. Returns how many recipients it unsubscribed."""
    if not any(is_unsubscribe_address(r) for r in rcpt_to):
        return 0
    subject = str(parse_head(raw).get("Subject", ""))
    done = 0
    for token in dict.fromkeys(MAILED_TOKEN.findall(subject)):
        if await unsubscribe(session=session, token=token) is not None:
            done += 1
    return done


async def forget_recipient(*, session: AsyncSession, message_ids: list[uuid.UUID], email: str) -> int:
    """Data removal: the opens and clicks (address, IP, User-Agent) of the (lower-cased) address on
    messages that keep other recipients; returns how many were deleted."""
    return await repository.delete_for_recipient(session=session, message_ids=message_ids, email=email)


# --- the opens and clicks API ---------------------------------------------------------------------


async def opens_page(
    *, session: AsyncSession, server_id: int, filters: ActivityFilter, count: int, offset: int, message_id: str | None = None
) -> tuple[int, list[OpenWebhook]]:
    """A page of opens, shaped as their webhooks; of one message when `message_id` is given."""
    if message_id is not None:
        filters.message_id = (await messages.get_message_or_raise(session=session, server_id=server_id, message_id=message_id)).id
    total, rows = await list_opens(session=session, server_id=server_id, filters=filters, count=count, offset=offset)
    metadata = await messages.metadata_of(session=session, message_ids={r.message_id for r in rows})
    return total, [payloads.open_payload(r, metadata=metadata.get(r.message_id, {})) for r in rows]


async def clicks_page(
    *, session: AsyncSession, server_id: int, filters: ActivityFilter, count: int, offset: int, message_id: str | None = None
) -> tuple[int, list[ClickWebhook]]:
    """A page of clicks, shaped as their webhooks; of one message when `message_id` is given."""
    if message_id is not None:
        filters.message_id = (await messages.get_message_or_raise(session=session, server_id=server_id, message_id=message_id)).id
    total, rows = await list_clicks(session=session, server_id=server_id, filters=filters, count=count, offset=offset)
    metadata = await messages.metadata_of(session=session, message_ids={r.message_id for r in rows})
    return total, [payloads.click_payload(r, metadata=metadata.get(r.message_id, {})) for r in rows]
