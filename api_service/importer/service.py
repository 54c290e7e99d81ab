"""Moving an account into this Postgate: what the source has, compared with what is here, written through the
domains' own services (the same rules and side effects as their APIs), never by SQL.

Every object is matched by what identifies it to a user, so a second run finds everything in place and changes
nothing: servers by name, streams by ID, templates and layouts by alias (an alias-less template by its id), webhooks
by URL and stream, suppressions by address and stream, sender signatures by address, domains by name. What differs
is updated; what is missing is created. Nothing here is ever deleted.

A dry run (`apply=False`) walks the same way and writes nothing. When applying, each object is written in a
savepoint of the caller's one transaction: one the services refuse (a second inbound stream, a 101st template) is
reported as failed and the others go on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.config import Settings
from api_service.domains import service as domains
from api_service.domains.views import dns_details
from api_service.errors import NotFound, PostmarkError
from api_service.importer.source import PostmarkSource, SourceError, SourceServer, SourceServerContent, SourceStream, SourceTemplate
from api_service.models import Domain, MessageStream, SenderSignature, Server, Webhook
from api_service.senders import service as senders
from api_service.servers import service as servers
from api_service.streams import service as streams
from api_service.suppressions import service as suppressions
from api_service.templates import service as templates
from api_service.webhooks import service as webhooks
from shared.constants import ErrorCode, StreamType, SuppressionOrigin, SuppressionReason, TemplateType
from shared.schemas.senders import DomainCreate, DomainEdit, SenderCreate, SenderEdit
from shared.schemas.servers import ServerEdit
from shared.schemas.streams import StreamEdit, SubscriptionConfig
from shared.schemas.templates import TemplateEdit, TemplateWrite
from shared.schemas.webhooks import WebhookHttpAuth, WebhookWrite

ACCOUNT = "(account)"
MANY = 1_000_000


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"
    FAILED = "failed"


class Section(StrEnum):
    SERVERS = "Servers"
    STREAMS = "Message streams"
    TEMPLATES = "Templates and layouts"
    SUPPRESSIONS = "Suppressions"
    WEBHOOKS = "Webhooks"
    SIGNATURES = "Sender signatures"
    DOMAINS = "Domains"


@dataclass(frozen=True, slots=True)
class Change:
    section: Section
    owner: str
    name: str
    action: Action
    detail: str = ""


@dataclass(frozen=True, slots=True)
class DnsRecord:
    domain: str
    kind: str
    host: str
    value: str


@dataclass(slots=True)
class Report:
    changes: list[Change] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)
    """Server name → the token made for it here (Postgate keeps only digests: shown this once)."""
    dns: list[DnsRecord] = field(default_factory=list)

    def counts(self) -> dict[Section, Counter[Action]]:
        counts: dict[Section, Counter[Action]] = {section: Counter() for section in Section}
        for change in self.changes:
            counts[change.section][change.action] += 1
        return counts

    @property
    def nothing_to_do(self) -> bool:
        return all(c.action in (Action.UNCHANGED, Action.SKIPPED) for c in self.changes)

    @property
    def failed(self) -> list[Change]:
        return [c for c in self.changes if c.action is Action.FAILED]


class Step(Protocol):
    """Progress: called once per step with what it is; `total` (the number of steps) once it is known."""

    def __call__(self, text: str, total: int | None = None) -> None: ...


def _no_progress(text: str, total: int | None = None) -> None:
    return None


def _differences(wanted: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return sorted(key for key, value in wanted.items() if current.get(key) != value)


class Importer:
    """One run: reads the source, compares, and (when applying) writes through the services."""

    def __init__(self, *, session: AsyncSession, source: PostmarkSource, apply: bool, settings: Settings, step: Step | None = None) -> None:
        self.session = session
        self.settings = settings
        self.url_guard = settings.webhook_url_guard()
        self.source = source
        self.apply = apply
        self.step: Step = step or _no_progress
        self.report = Report()

    def _note(self, section: Section, owner: str, name: str, action: Action, detail: str = "") -> None:
        self.report.changes.append(Change(section, owner, name, action, detail))

    async def _write(
        self, section: Section, owner: str, name: str, action: Action, detail: str, write: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Record a create or update, and do it when applying (in a savepoint: a refusal fails this object alone)."""
        if not self.apply:
            self._note(section, owner, name, action, detail)
            return None
        try:
            async with self.session.begin_nested():
                result = await write()
        except PostmarkError as exc:
            self._note(section, owner, name, Action.FAILED, f"{exc.error_code}: {exc.message}")
            return None
        self._note(section, owner, name, action, detail)
        return result

    # --- the run -------------------------------------------------------------------------------------------

    async def run(self) -> Report:
        self.step("reading the source's servers")
        source_servers = await self.source.servers()
        self.step("sender signatures", total=3 + 6 * len(source_servers))
        await self.import_signatures(await self.source.sender_signatures())
        self.step("domains")
        await self.import_domains(await self.source.domains())
        contents: dict[int, SourceServerContent | SourceError] = {}
        for source_server in source_servers:
            self.step(f"reading server {source_server.name}")
            try:
                contents[source_server.id] = await self.source.server_content(source_server)
            except SourceError as exc:
                contents[source_server.id] = exc
        if self.apply:
            # A template whose id is taken here gets a generated one: past every id this run keeps, so it takes none.
            kept = [t.id for c in contents.values() if isinstance(c, SourceServerContent) for t in c.templates]
            await templates.reserve_ids(session=self.session, through=max(kept, default=0))
        for source_server in source_servers:
            self.step(f"server {source_server.name}")
            server = await self.import_server(source_server)
            if server is None and self.apply:
                continue  # its creation failed, and is reported
            planned = server is None
            server = server or Server(id=0, name=source_server.name)  # a dry run's server-to-be: never written
            content = contents[source_server.id]
            if isinstance(content, SourceError):
                self._note(Section.SERVERS, source_server.name, "streams, templates, suppressions, webhooks", Action.SKIPPED, str(content))
                continue
            self.step(f"server {source_server.name}: streams")
            await self.import_streams(server, source_server.name, content.streams, planned=planned)
            self.step(f"server {source_server.name}: templates")
            await self.import_templates(server, source_server.name, content.templates, planned=planned)
            # Suppressions before webhooks: historical suppressions are not news for a receiver set up by this run.
            self.step(f"server {source_server.name}: suppressions")
            await self.import_suppressions(server, source_server.name, content, planned=planned)
            self.step(f"server {source_server.name}: webhooks")
            await self.import_webhooks(server, source_server.name, content.webhooks, planned=planned)
        return self.report

    # --- account -------------------------------------------------------------------------------------------

    async def import_signatures(self, wanted: list[SenderCreate]) -> None:
        _, existing = await senders.list_signatures(session=self.session, count=MANY, offset=0)
        by_email: dict[str, SenderSignature] = {s.email.lower(): s for s in existing}
        for data in wanted:
            email = (data.FromEmail or "").strip().lower()
            current = by_email.get(email)
            if current is None:
                await self._write(
                    Section.SIGNATURES,
                    ACCOUNT,
                    email,
                    Action.CREATE,
                    "",
                    partial(senders.create_signature, session=self.session, data=data, settings=self.settings),
                )
                continue
            fields = {
                "Name": (data.Name or "", current.name),
                "ReplyToEmail": (data.ReplyToEmail or "", current.reply_to_email),
                "ReturnPathDomain": ((data.ReturnPathDomain or "").lower(), current.return_path_domain),
                "ConfirmationPersonalNote": (data.ConfirmationPersonalNote or "", current.confirmation_personal_note),
            }
            changed = {k: wanted_value for k, (wanted_value, now) in fields.items() if wanted_value != now}
            if not changed:
                self._note(Section.SIGNATURES, ACCOUNT, email, Action.UNCHANGED)
                continue
            await self._write(
                Section.SIGNATURES,
                ACCOUNT,
                email,
                Action.UPDATE,
                ", ".join(sorted(changed)),
                partial(senders.edit_signature, session=self.session, signature_id=current.id, data=SenderEdit(**changed)),
            )

    async def import_domains(self, wanted: list[DomainCreate]) -> None:
        _, existing = await domains.list_domains(session=self.session, count=MANY, offset=0)
        by_name: dict[str, Domain] = {d.name: d for d in existing}
        for data in wanted:
            name = (data.Name or "").strip().lower().rstrip(".")
            current = by_name.get(name)
            if current is None:
                domain = await self._write(
                    Section.DOMAINS,
                    ACCOUNT,
                    name,
                    Action.CREATE,
                    "new DKIM key",
                    partial(domains.create_domain, session=self.session, data=data, auto_confirm=self.settings.sender_auto_confirm),
                )
            elif (data.ReturnPathDomain or "").lower() != current.return_path_domain:
                domain = await self._write(
                    Section.DOMAINS,
                    ACCOUNT,
                    name,
                    Action.UPDATE,
                    "ReturnPathDomain",
                    partial(
                        domains.edit_domain,
                        session=self.session,
                        domain_id=current.id,
                        data=DomainEdit(ReturnPathDomain=data.ReturnPathDomain or ""),
                    ),
                )
            else:
                self._note(Section.DOMAINS, ACCOUNT, name, Action.UNCHANGED)
                domain = current
            if isinstance(domain, Domain):
                self._dns(domain)

    def _dns(self, domain: Domain) -> None:
        shown = dns_details(domain, settings=self.settings, now=datetime.now(UTC))
        if shown.DKIMHost:
            self.report.dns.append(DnsRecord(domain.name, "TXT (DKIM)", shown.DKIMHost, shown.DKIMTextValue))
        if domain.return_path_domain:
            self.report.dns.append(
                DnsRecord(domain.name, "CNAME (Return-Path)", domain.return_path_domain, "the host of RETURN_PATH_DOMAIN")
            )

    # --- a server ------------------------------------------------------------------------------------------

    async def import_server(self, source: SourceServer) -> Server | None:
        """The server of that name here, created or brought in line with the source's settings; None on a dry run
        of a server that does not exist yet (everything of it is then to create)."""
        _, candidates = await servers.list_servers(session=self.session, count=MANY, offset=0, name=source.name)
        current = next((s for s in candidates if s.name.lower() == source.name.lower()), None)
        if current is None:
            created = await self._write(
                Section.SERVERS,
                source.name,
                source.name,
                Action.CREATE,
                "a new server token is printed below",
                partial(servers.create_server, session=self.session, data=source.settings, url_guard=self.url_guard),
            )
            if created is None:
                return None
            self.report.tokens[source.name] = created.token
            server: Server = created.server
            return server
        try:
            wanted = servers.clean_changes(ServerEdit.model_validate(source.settings.model_dump(exclude={"DeliveryType"})))
        except PostmarkError as exc:
            self._note(Section.SERVERS, source.name, source.name, Action.FAILED, f"{exc.error_code}: {exc.message}")
            return current
        changed = _differences(wanted, {column: getattr(current, column) for column in wanted})
        columns = {column: name for name, column in servers.EDITABLE.items()}
        if source.settings.DeliveryType and source.settings.DeliveryType.lower() != current.delivery_type.lower():
            self._note(Section.SERVERS, source.name, "DeliveryType", Action.SKIPPED, "fixed at creation; differs here")
        if not changed:
            self._note(Section.SERVERS, source.name, source.name, Action.UNCHANGED)
            return current
        edit = ServerEdit(**{columns[c]: wanted[c] for c in changed})
        await self._write(
            Section.SERVERS,
            source.name,
            source.name,
            Action.UPDATE,
            ", ".join(columns[c] for c in changed),
            partial(servers.edit_server, session=self.session, server=current, data=edit, url_guard=self.url_guard, account=True),
        )
        return current

    async def import_streams(self, server: Server, owner: str, wanted: list[SourceStream], *, planned: bool) -> None:
        existing: dict[str, tuple[str, str, str, bool]] = {}
        if not planned:
            for row in await streams.list_streams(session=self.session, server_id=server.id, stream_type=None, include_archived=True):
                existing[row.stream_id] = _stream_state(row)
        else:  # a server this run creates starts with the default streams
            for stream_id, name, stream_type in streams.DEFAULT_STREAMS:
                existing[stream_id] = (name, "", streams.default_handling(stream_type).value, False)
        for stream in wanted:
            data = stream.data
            stream_id = (data.ID or "").lower()
            handling = (
                data.SubscriptionManagementConfiguration.UnsubscribeHandlingType if data.SubscriptionManagementConfiguration else None
            )
            current = existing.get(stream_id)
            if current is None:
                if data.MessageStreamType == StreamType.INBOUND.value:
                    self._note(Section.STREAMS, owner, stream_id, Action.SKIPPED, "a server has one inbound stream: 'inbound'")
                    continue
                await self._write(
                    Section.STREAMS,
                    owner,
                    stream_id,
                    Action.CREATE,
                    data.MessageStreamType or "",
                    partial(streams.create_stream, session=self.session, server_id=server.id, data=data),
                )
                current = (data.Name or "", data.Description or "", handling or "", False)
            name, description, current_handling, archived = current
            changes: dict[str, Any] = {}
            if (data.Name or name) != name:
                changes["Name"] = data.Name
            if (data.Description or "") != description:
                changes["Description"] = data.Description or ""
            if handling and handling != current_handling and data.MessageStreamType != StreamType.INBOUND.value:
                changes["SubscriptionManagementConfiguration"] = SubscriptionConfig(UnsubscribeHandlingType=handling)
            if changes and stream_id in existing:
                await self._write(
                    Section.STREAMS,
                    owner,
                    stream_id,
                    Action.UPDATE,
                    ", ".join(sorted(changes)),
                    partial(
                        streams.edit_stream, session=self.session, server_id=server.id, stream_id=stream_id, data=StreamEdit(**changes)
                    ),
                )
            if stream.archived != archived:
                verb = "archive" if stream.archived else "unarchive"
                await self._write(
                    Section.STREAMS,
                    owner,
                    stream_id,
                    Action.UPDATE,
                    verb,
                    partial(
                        streams.archive_stream if stream.archived else streams.unarchive_stream,
                        session=self.session,
                        server_id=server.id,
                        stream_id=stream_id,
                    ),
                )
            elif not changes and stream_id in existing:
                self._note(Section.STREAMS, owner, stream_id, Action.UNCHANGED)

    async def import_templates(self, server: Server, owner: str, wanted: list[SourceTemplate], *, planned: bool) -> None:
        # Layouts first: a Standard template names its layout by alias.
        ordered = sorted(wanted, key=lambda t: (t.data.TemplateType != TemplateType.LAYOUT.value, t.id))
        for template in ordered:
            data = template.data
            label = data.Alias or f"#{template.id} {data.Name}"
            current = None if planned else await self._find_template(server, template)
            if current is None:
                created = await self._write(
                    Section.TEMPLATES,
                    owner,
                    label,
                    Action.CREATE,
                    data.TemplateType or TemplateType.STANDARD.value,
                    partial(
                        templates.create_template,
                        session=self.session,
                        server_id=server.id,
                        data=_template_write(data),
                        keep_id=template.id,
                    ),
                )
                if created is not None and created.row.id != template.id:
                    self._note(Section.TEMPLATES, owner, label, Action.SKIPPED, f"id {template.id} is taken here: it is {created.row.id}")
                continue
            row, layout_alias = current
            wanted_fields = {
                "Name": data.Name or "",
                "Subject": data.Subject if data.TemplateType != TemplateType.LAYOUT.value else None,
                "HtmlBody": data.HtmlBody or None,
                "TextBody": data.TextBody or None,
                "LayoutTemplate": (data.LayoutTemplate or None),
            }
            now = {
                "Name": row.name,
                "Subject": row.subject,
                "HtmlBody": row.html_body,
                "TextBody": row.text_body,
                "LayoutTemplate": layout_alias,
            }
            changed = _differences(wanted_fields, now)
            if (data.TemplateType or TemplateType.STANDARD.value) != row.template_type:
                self._note(Section.TEMPLATES, owner, label, Action.FAILED, f"it is a {row.template_type} here; the type cannot change")
            elif not changed:
                self._note(Section.TEMPLATES, owner, label, Action.UNCHANGED)
            else:
                edit = TemplateEdit(**{k: ("" if wanted_fields[k] is None else wanted_fields[k]) for k in changed})
                await self._write(
                    Section.TEMPLATES,
                    owner,
                    label,
                    Action.UPDATE,
                    ", ".join(changed),
                    partial(templates.edit_template, session=self.session, server_id=server.id, id_or_alias=str(row.id), data=edit),
                )

    async def _find_template(self, server: Server, template: SourceTemplate) -> tuple[Any, str | None] | None:
        try:
            if template.data.Alias:
                found = await templates.get_template_or_raise(session=self.session, server_id=server.id, id_or_alias=template.data.Alias)
            else:
                found = await templates.get_template_or_raise(session=self.session, server_id=server.id, id_or_alias=str(template.id))
                if found.row.name != template.data.Name or found.row.alias:
                    return None
        except NotFound:
            return None
        return found.row, found.layout_alias

    async def import_suppressions(self, server: Server, owner: str, content: SourceServerContent, *, planned: bool) -> None:
        for stream_id, wanted in content.suppressions.items():
            present: set[str] = set()
            if not planned:
                rows = await suppressions.dump(
                    session=self.session,
                    server_id=server.id,
                    stream=stream_id,
                    reason=None,
                    origin=None,
                    email=None,
                    from_date=None,
                    to_date=None,
                )
                present = {r.email.lower() for r in rows}
            missing = [s for s in wanted if s.email.lower() not in present]
            for item in wanted:
                if item.email.lower() in present:
                    self._note(Section.SUPPRESSIONS, owner, f"{stream_id}: {item.email}", Action.UNCHANGED)
            for item in missing:
                reason = next((r for r in SuppressionReason if r.value == item.reason), SuppressionReason.MANUAL_SUPPRESSION)
                origin = next((o for o in SuppressionOrigin if o.value == item.origin), SuppressionOrigin.CUSTOMER)
                await self._write(
                    Section.SUPPRESSIONS,
                    owner,
                    f"{stream_id}: {item.email}",
                    Action.CREATE,
                    f"{reason.value} ({origin.value})",
                    partial(self._suppress, server, stream_id, item.email.lower(), reason, origin),
                )

    async def _suppress(self, server: Server, stream: str, email: str, reason: SuppressionReason, origin: SuppressionOrigin) -> bool:
        if await streams.get_stream(session=self.session, server_id=server.id, stream_id=stream) is None:
            raise PostmarkError(ErrorCode.STREAM_NOT_FOUND_BY_ID, f"The message stream '{stream}' was not found.")
        return await suppressions.suppress(session=self.session, server=server, stream=stream, email=email, reason=reason, origin=origin)

    async def import_webhooks(self, server: Server, owner: str, wanted: list[WebhookWrite], *, planned: bool) -> None:
        existing: list[Webhook] = []
        if not planned:
            existing = await webhooks.list_webhooks(session=self.session, server_id=server.id, stream=None)
        for data in wanted:
            stream = (data.MessageStream or "outbound").lower()
            label = f"{stream}: {data.Url}"
            current = next((h for h in existing if h.url == data.Url and h.message_stream == stream), None)
            if current is None:
                await self._write(
                    Section.WEBHOOKS,
                    owner,
                    label,
                    Action.CREATE,
                    "",
                    partial(webhooks.create_webhook, session=self.session, server=server, data=data, url_guard=self.url_guard),
                )
                continue
            try:
                triggers = webhooks.merge_triggers({}, data.Triggers)
                headers = webhooks.check_headers([h.model_dump() for h in data.HttpHeaders or []])
            except PostmarkError as exc:
                self._note(Section.WEBHOOKS, owner, label, Action.FAILED, f"{exc.error_code}: {exc.message}")
                continue
            auth = ((data.HttpAuth.Username or "") if data.HttpAuth else "", (data.HttpAuth.Password or "") if data.HttpAuth else "")
            changed = [
                name
                for name, differs in (
                    ("Triggers", triggers != current.triggers),
                    ("HttpHeaders", headers != current.http_headers),
                    ("HttpAuth", auth != (current.http_auth_username, current.http_auth_password)),
                )
                if differs
            ]
            if not changed:
                self._note(Section.WEBHOOKS, owner, label, Action.UNCHANGED)
                continue
            edit = WebhookWrite(
                Triggers=data.Triggers,
                HttpHeaders=data.HttpHeaders or [],
                HttpAuth=data.HttpAuth or WebhookHttpAuth(Username="", Password=""),
            )
            await self._write(
                Section.WEBHOOKS,
                owner,
                label,
                Action.UPDATE,
                ", ".join(changed),
                partial(webhooks.edit_webhook, session=self.session, hook=current, data=edit, url_guard=self.url_guard),
            )


def _stream_state(row: MessageStream) -> tuple[str, str, str, bool]:
    return row.name, row.description or "", row.unsubscribe_handling, row.archived_at is not None


def _template_write(data: TemplateWrite) -> TemplateWrite:
    """What to create: a Layout has no Subject, and empty strings are left out."""
    fields = data.model_dump(exclude_none=True)
    if data.TemplateType == TemplateType.LAYOUT.value:
        fields.pop("Subject", None)
    return TemplateWrite(**{k: v for k, v in fields.items() if v != ""})


async def import_account(
    *, session: AsyncSession, source: PostmarkSource, apply: bool, settings: Settings, step: Step | None = None
) -> Report:
    """Compare (and, with `apply`, copy) everything the source's tokens reach; the caller commits."""
    return await Importer(session=session, source=source, apply=apply, settings=settings, step=step).run()
