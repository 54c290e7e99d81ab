"""The account being moved, read over HTTP with Postmark's public API (Postmark itself, or another Postgate).

Read-only: only `GET`s. Every list is read page by page (`count=500`). What is read is parsed into the same wire
models Postgate's own API takes (`ServerCreate`, `StreamCreate`, `TemplateWrite`, …), so the importer hands the
services exactly what a client would have sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from shared.constants import ACCOUNT_TOKEN_HEADER, SERVER_TOKEN_HEADER, StreamType
from shared.schemas.senders import DomainCreate, SenderCreate
from shared.schemas.servers import ServerCreate
from shared.schemas.streams import StreamCreate
from shared.schemas.templates import TemplateWrite
from shared.schemas.webhooks import WebhookWrite

POSTMARK_API = "https://api.postmarkapp.com"
PAGE = 500


class SourceError(Exception):
    """The source could not be read: a wrong token, a refused request, an unreachable host."""


@dataclass(frozen=True, slots=True)
class SourceServer:
    id: int
    settings: ServerCreate
    token: str | None
    """A server token that reads it (Postmark lists them in full with the account token; Postgate masks them)."""

    @property
    def name(self) -> str:
        return self.settings.Name or f"Server {self.id}"


@dataclass(frozen=True, slots=True)
class SourceStream:
    data: StreamCreate
    archived: bool


@dataclass(frozen=True, slots=True)
class SourceTemplate:
    id: int
    data: TemplateWrite


@dataclass(frozen=True, slots=True)
class SourceSuppression:
    email: str
    reason: str
    origin: str


@dataclass(slots=True)
class SourceServerContent:
    """What one server holds, read with its server token."""

    streams: list[SourceStream] = field(default_factory=list)
    templates: list[SourceTemplate] = field(default_factory=list)
    webhooks: list[WebhookWrite] = field(default_factory=list)
    suppressions: dict[str, list[SourceSuppression]] = field(default_factory=dict)


def usable_token(tokens: list[Any]) -> str | None:
    """The first token of a server's `ApiTokens` that is whole (Postgate shows `********-…-abcd` after creation)."""
    return next((t for t in tokens if isinstance(t, str) and t and "*" not in t), None)


class PostmarkSource:
    """Reads an account through Postmark's API with the account token and/or server tokens."""

    def __init__(
        self,
        *,
        base_url: str = POSTMARK_API,
        account_token: str | None = None,
        server_tokens: list[str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 30,
    ) -> None:
        if not account_token and not server_tokens:
            raise SourceError("Give the source's account token, or at least one server token.")
        self.account_token = account_token or None
        self.server_tokens = list(server_tokens or [])
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            transport=transport,
            timeout=timeout,
            headers={"Accept": "application/json", "User-Agent": "postgate-import"},
        )

    async def __aenter__(self) -> PostmarkSource:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def _get(self, path: str, *, token: str, account: bool = False, params: dict[str, Any] | None = None) -> Any:
        header = ACCOUNT_TOKEN_HEADER if account else SERVER_TOKEN_HEADER
        try:
            response = await self._client.get(path, params=params, headers={header: token})
        except httpx.HTTPError as exc:
            raise SourceError(f"GET {path}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise SourceError(f"GET {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    async def _pages(self, path: str, key: str, *, token: str, account: bool = False) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            body = await self._get(path, token=token, account=account, params={"count": PAGE, "offset": len(found)})
            page = body.get(key) or []
            found += page
            if len(page) < PAGE or len(found) >= int(body.get("TotalCount", 0)):
                return found

    # --- account -------------------------------------------------------------------------------------------

    async def servers(self) -> list[SourceServer]:
        """The servers the tokens reach: every server of the account, and the server of each server token."""
        found: dict[int, SourceServer] = {}
        if self.account_token:
            for raw in await self._pages("/servers", "Servers", token=self.account_token, account=True):
                found[raw["ID"]] = SourceServer(raw["ID"], ServerCreate.model_validate(raw), usable_token(raw.get("ApiTokens") or []))
        for token in self.server_tokens:
            raw = await self._get("/server", token=token)
            found[raw["ID"]] = SourceServer(raw["ID"], ServerCreate.model_validate(raw), token)
        return [found[key] for key in sorted(found)]

    async def sender_signatures(self) -> list[SenderCreate]:
        if not self.account_token:
            return []
        signatures = []
        for summary in await self._pages("/senders", "SenderSignatures", token=self.account_token, account=True):
            raw = await self._get(f"/senders/{summary['ID']}", token=self.account_token, account=True)
            signatures.append(
                SenderCreate(
                    FromEmail=raw.get("EmailAddress"),
                    Name=raw.get("Name"),
                    ReplyToEmail=raw.get("ReplyToEmailAddress") or None,
                    ReturnPathDomain=raw.get("ReturnPathDomain") or None,
                    ConfirmationPersonalNote=raw.get("ConfirmationPersonalNote") or None,
                )
            )
        return signatures

    async def domains(self) -> list[DomainCreate]:
        if not self.account_token:
            return []
        domains = []
        for summary in await self._pages("/domains", "Domains", token=self.account_token, account=True):
            raw = await self._get(f"/domains/{summary['ID']}", token=self.account_token, account=True)
            domains.append(DomainCreate(Name=raw.get("Name"), ReturnPathDomain=raw.get("ReturnPathDomain") or None))
        return domains

    # --- one server ----------------------------------------------------------------------------------------

    async def server_content(self, server: SourceServer) -> SourceServerContent:
        """Streams (archived ones too), templates and layouts with their content, webhooks, and each stream's suppressions."""
        if server.token is None:
            raise SourceError(f"no server token for '{server.name}'")
        token = server.token
        content = SourceServerContent()
        streams = await self._get("/message-streams", token=token, params={"IncludeArchivedStreams": "true"})
        for raw in streams.get("MessageStreams") or []:
            content.streams.append(SourceStream(StreamCreate.model_validate(raw), archived=bool(raw.get("ArchivedAt"))))
        for summary in await self._pages("/templates", "Templates", token=token):
            if summary.get("Active") is False:
                continue
            raw = await self._get(f"/templates/{summary['TemplateId']}", token=token)
            content.templates.append(SourceTemplate(raw["TemplateId"], TemplateWrite.model_validate(raw)))
        hooks = await self._get("/webhooks", token=token)
        content.webhooks = [WebhookWrite.model_validate(raw) for raw in hooks.get("Webhooks") or []]
        for stream in content.streams:
            if stream.data.MessageStreamType == StreamType.INBOUND or stream.data.ID is None:
                continue
            dump = await self._get(f"/message-streams/{stream.data.ID}/suppressions/dump", token=token)
            content.suppressions[stream.data.ID] = [
                SourceSuppression(raw["EmailAddress"], raw.get("SuppressionReason", ""), raw.get("Origin", ""))
                for raw in dump.get("Suppressions") or []
            ]
        return content
