"""Server rules: names, colours, hook URLs and the token shown once.

A new server's default streams are made here through `streams.service`; the streams package
imports nothing of this one but the authentication dependency its router uses (`servers.deps`),
so the two services never import each other.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.audit import service as audit
from api_service.core.netguard import UrlGuard
from api_service.errors import NotFound, PostmarkError
from api_service.models import Server
from api_service.servers import repository, token_service
from api_service.servers.cache import SERVER_SNAPSHOTS, ServerSnapshot
from api_service.servers.tokens import new_token, token_digest
from api_service.streams import service as streams
from shared.constants import SERVER_COLORS, DeliveryType, ErrorCode, TrackLinks
from shared.schemas.servers import ServerCreate, ServerEdit

HOOK_FIELDS = ("InboundHookUrl", "BounceHookUrl", "OpenHookUrl", "DeliveryHookUrl", "ClickHookUrl")

# Wire field → column, for the fields PUT may change.
EDITABLE: dict[str, str] = {
    "Name": "name",
    "Color": "color",
    "SmtpApiActivated": "smtp_api_activated",
    "RawEmailEnabled": "raw_email_enabled",
    "InboundHookUrl": "inbound_hook_url",
    "BounceHookUrl": "bounce_hook_url",
    "OpenHookUrl": "open_hook_url",
    "DeliveryHookUrl": "delivery_hook_url",
    "ClickHookUrl": "click_hook_url",
    "PostFirstOpenOnly": "post_first_open_only",
    "InboundDomain": "inbound_domain",
    "InboundSpamThreshold": "inbound_spam_threshold",
    "TrackOpens": "track_opens",
    "TrackLinks": "track_links",
    "IncludeBounceContentInHook": "include_bounce_content_in_hook",
    "EnableSmtpApiErrorHooks": "enable_smtp_api_error_hooks",
    "RetentionDays": "retention_days",
}
# Postmark keeps content 45 days, 7 to 365 with its retention add-on; Postgate takes the same range.
RETENTION_DAYS_RANGE = range(7, 366)


@dataclass(slots=True)
class CreatedServer:
    server: Server
    token: str


def valid_hook_url(url: str) -> bool:
    if url == "":
        return True
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c.isspace() for c in url)


def clean_changes(data: ServerEdit) -> dict[str, Any]:
    """Validate the given fields and return them as column values."""
    given = data.model_dump(exclude_unset=True, exclude_none=True)
    changes: dict[str, Any] = {}
    for field, column in EDITABLE.items():
        if field not in given:
            continue
        value = given[field]
        if isinstance(value, str) and "\x00" in value:
            raise PostmarkError(ErrorCode.INVALID_REQUEST_FIELDS, f"Invalid request field(s) - {field}.")
        if field == "Name":
            value = value.strip()
            if not value or len(value) > 255:
                raise PostmarkError(ErrorCode.SERVER_NAME_INVALID, "The server name is missing or invalid.")
        elif field == "Color":
            value = value.lower()
            if value not in SERVER_COLORS:
                raise PostmarkError(
                    ErrorCode.INVALID_COLOR,
                    f"Invalid color '{given[field]}'. Valid colors: Purple, Blue, Turquoise, Green, Red, Yellow, Grey, Orange.",
                )
        elif field in HOOK_FIELDS:
            value = value.strip()
            if not valid_hook_url(value):
                raise PostmarkError(ErrorCode.INVALID_HOOK_URL, f"The {field} is not a valid http or https URL.")
        elif field == "InboundSpamThreshold":
            if not 0 <= value <= 30 or value % 5:
                raise PostmarkError(ErrorCode.INVALID_SPAM_THRESHOLD, "InboundSpamThreshold must be between 0 and 30, in steps of 5.")
        elif field == "TrackLinks":
            matched = next((t for t in TrackLinks if t.lower() == str(value).lower()), None)
            if matched is None:
                raise PostmarkError(ErrorCode.INVALID_TRACK_LINKS, "TrackLinks must be one of None, HtmlAndText, HtmlOnly, TextOnly.")
            value = matched
        elif field == "InboundDomain":
            value = value.strip().lower()
        elif field == "RetentionDays" and value not in RETENTION_DAYS_RANGE:
            raise PostmarkError(
                ErrorCode.INVALID_REQUEST_FIELDS,
                f"Invalid request field(s) - RetentionDays must be a whole number of days from {RETENTION_DAYS_RANGE.start} to {RETENTION_DAYS_RANGE.stop - 1}.",
            )
        changes[column] = value
    return changes


async def _check_hook_targets(changes: dict[str, Any], *, url_guard: UrlGuard) -> None:
    """Hook URLs may only point at public addresses (or WEBHOOK_ALLOWED_NETWORKS)."""
    for field in HOOK_FIELDS:
        url = changes.get(EDITABLE[field])
        if url:
            refusal = await url_guard.refusal(url)
            if refusal is not None:
                raise PostmarkError(
                    ErrorCode.INVALID_HOOK_URL, f"The {field} is not allowed: {refusal}. Hooks may only reach public addresses."
                )


async def _check_name_free(*, session: AsyncSession, name: str, server_id: int | None) -> None:
    existing = await repository.get_server_by_name(session=session, name=name)
    if existing is not None and existing.id != server_id:
        raise PostmarkError(ErrorCode.SERVER_NAME_EXISTS, "This server name already exists.")


async def _check_inbound_domain_free(*, session: AsyncSession, domain: str, server_id: int | None) -> None:
    """One server per InboundDomain: mail to it must have one place to go."""
    if not domain:
        return
    existing = await repository.get_server_by_inbound_domain(session=session, domain=domain)
    if existing is not None and existing.id != server_id:
        raise PostmarkError(ErrorCode.DUPLICATE_INBOUND_DOMAIN, f"The inbound domain {domain} is already used by another server.")


async def create_server(*, session: AsyncSession, data: ServerCreate, url_guard: UrlGuard) -> CreatedServer:
    if not data.Name or not data.Name.strip():
        raise PostmarkError(ErrorCode.SERVER_NAME_INVALID, "The server name is missing or invalid.")
    changes = clean_changes(data)
    await _check_hook_targets(changes, url_guard=url_guard)
    delivery = DeliveryType.LIVE
    if data.DeliveryType is not None:
        matched = next((t for t in DeliveryType if t.lower() == data.DeliveryType.lower()), None)
        if matched is None:
            raise PostmarkError(ErrorCode.INVALID_DELIVERY_TYPE, "DeliveryType must be Live or Sandbox.")
        delivery = matched
    await _check_name_free(session=session, name=changes["name"], server_id=None)
    await _check_inbound_domain_free(session=session, domain=changes.get("inbound_domain", ""), server_id=None)
    server = Server(
        delivery_type=delivery,
        inbound_hash=secrets.token_hex(16),
        webhook_secret=secrets.token_urlsafe(32),
        tracking_secret=secrets.token_urlsafe(32),
        color="purple",
        smtp_api_activated=False,
        raw_email_enabled=False,
        inbound_hook_url="",
        bounce_hook_url="",
        open_hook_url="",
        delivery_hook_url="",
        click_hook_url="",
        post_first_open_only=False,
        inbound_domain="",
        inbound_spam_threshold=0,
        track_opens=False,
        track_links=TrackLinks.NONE,
        include_bounce_content_in_hook=False,
        enable_smtp_api_error_hooks=False,
    )
    for column, value in changes.items():
        setattr(server, column, value)
    token = new_token()
    await repository.add_server(session=session, server=server, token_digest=token_digest(token), token_hint=token[-4:])
    await streams.create_default_streams(session=session, server_id=server.id)
    return CreatedServer(server=server, token=token)


async def get_or_create_server(*, session: AsyncSession, name: str, url_guard: UrlGuard) -> Server:
    """The server of this name, made (Live, with its default streams) when there is none yet."""
    existing = await repository.get_server_by_name(session=session, name=name)
    if existing is not None:
        return existing
    try:
        async with session.begin_nested():
            return (await create_server(session=session, data=ServerCreate(Name=name), url_guard=url_guard)).server
    except IntegrityError:  # a concurrent request made it meanwhile
        made = await repository.get_server_by_name(session=session, name=name)
        if made is None:
            raise
        return made


async def edit_server(*, session: AsyncSession, server: Server, data: ServerEdit, url_guard: UrlGuard, account: bool = False) -> Server:
    """Apply the given fields; `account` is whether the account token asked (it alone may change RetentionDays:
    how long a server's mail is kept is the account holder's decision, not a sending application's)."""
    changes = clean_changes(data)
    if not data.model_dump(exclude_unset=True, exclude_none=True):
        raise PostmarkError(ErrorCode.SERVER_NO_DATA, "No data was supplied: send at least one server field to change.")
    if "retention_days" in changes and not account:
        raise PostmarkError(
            ErrorCode.INVALID_REQUEST_FIELDS,
            "Invalid request field(s) - RetentionDays can only be changed with the account token (PUT /servers/{serverid}).",
        )
    await _check_hook_targets(changes, url_guard=url_guard)
    if "name" in changes:
        await _check_name_free(session=session, name=changes["name"], server_id=server.id)
    await _check_inbound_domain_free(session=session, domain=changes.get("inbound_domain", ""), server_id=server.id)
    wire = {column: field for field, column in EDITABLE.items()}
    before = {wire[column]: _plain(getattr(server, column)) for column in changes}
    for column, value in changes.items():
        setattr(server, column, value)
    await session.flush()
    SERVER_SNAPSHOTS.clear()
    audit.note_change(
        session=session,
        target_type="server",
        target_id=server.id,
        server_id=server.id,
        before=before,
        after={wire[column]: _plain(value) for column, value in changes.items()},
    )
    return server


def _plain(value: Any) -> Any:
    return value if value is None or isinstance(value, bool | int | float | str) else str(value)


async def get_servers_by_tokens(*, session: AsyncSession, tokens: list[str]) -> list[Server | None]:
    """The server of each token that may use SMTP (scope full or send, unexpired), in order (None:
    no such token); one query for all of them."""
    return await token_service.servers_for_smtp(session=session, tokens=tokens)


async def get_server_or_raise(*, session: AsyncSession, server_id: int) -> Server:
    server = await repository.get_server(session=session, server_id=server_id)
    if server is None:
        raise NotFound(ErrorCode.SERVER_QUERY, f"Server {server_id} was not found.")
    return server


async def delete_server(*, session: AsyncSession, server_id: int) -> str:
    server = await get_server_or_raise(session=session, server_id=server_id)
    name = server.name
    await repository.delete_server(session=session, server=server)
    SERVER_SNAPSHOTS.clear()
    return name


def require_smtp_enabled(server: Server | ServerSnapshot) -> None:
    if not server.smtp_api_activated:
        raise PostmarkError(
            ErrorCode.SMTP_DISABLED, "SMTP API access is not enabled for this server: turn on SmtpApiActivated in the server settings."
        )


async def get_servers(*, session: AsyncSession, ids: set[int]) -> dict[int, Server]:
    return await repository.get_servers(session=session, ids=ids)


async def retired_tracking_secret(*, session: AsyncSession, server_id: int) -> str | None:
    """The tracking secret of a deleted server (None for one that exists or never did)."""
    return await repository.retired_tracking_secret(session=session, server_id=server_id)


async def list_servers(*, session: AsyncSession, count: int, offset: int, name: str | None) -> tuple[int, list[Server]]:
    return await repository.list_servers(session=session, count=count, offset=offset, name=name)


async def token_hints(*, session: AsyncSession, server_ids: list[int]) -> dict[int, list[str]]:
    """The last characters of each server's tokens, for showing them masked."""
    return await repository.token_hints(session=session, server_ids=server_ids)


async def retention_days(*, session: AsyncSession, default_days: int) -> dict[int, int]:
    """Each server's id and how many days its records are kept (its RetentionDays, else the default)."""
    return {server_id: days or default_days for server_id, days in await repository.retention_days(session=session)}
