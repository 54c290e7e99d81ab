"""Serving: the SMTP listeners and the httpx client share one event loop."""

from __future__ import annotations

import asyncio
import logging
import ssl
import warnings
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from aiosmtpd.smtp import SMTP
from shared.schemas.smtp import SMTP_AUTH_BATCH_MAX_TOKENS, SMTP_BATCH_MAX_BYTES, SmtpBatchMessage

from smtp_service import metrics
from smtp_service.api_client import ApiClient, AuthOutcome, SubmitOutcome
from smtp_service.batcher import Batcher, BatchLimits
from smtp_service.config import SmtpSettings
from smtp_service.handler import GatewayHandler, MxHandler
from smtp_service.session import ObservedSMTP

log = logging.getLogger("postgate.smtp")


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if not (settings.smtp_tls_cert and settings.smtp_tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.smtp_tls_cert, settings.smtp_tls_key)
    return context


def protocol_factory(
    handler: GatewayHandler,
    settings: SmtpSettings,
    *,
    context: ssl.SSLContext | None,
    implicit_tls: bool,
    sessions: weakref.WeakSet[SMTP],
) -> Callable[[], SMTP]:
    def make() -> SMTP:
        with warnings.catch_warnings():
            # aiosmtpd warns when AUTH is allowed before STARTTLS. Postmark allows it, legacy
            # clients rely on it, and SMTP_REQUIRE_TLS_FOR_AUTH turns it off (see README).
            warnings.simplefilter("ignore", UserWarning)
            protocol = _smtp()
        sessions.add(protocol)
        return protocol

    def _smtp() -> SMTP:
        return smtp_protocol(
            handler,
            settings,
            # STARTTLS only on plain ports; the implicit-TLS port is encrypted from the start.
            tls_context=None if implicit_tls else context,
            auth_required=True,
            auth_require_tls=settings.smtp_require_tls_for_auth and not implicit_tls,
        )

    return make


def smtp_protocol(handler: object, settings: SmtpSettings, **options: Any) -> SMTP:
    """aiosmtpd's protocol with the settings every Postgate listener shares, observed (metrics, a log
    line per session); on the submission ports refusing rate-limited servers at MAIL FROM, on the MX
    listener clients over their per-IP connection limit."""
    return ObservedSMTP(
        handler,
        rate_limited=handler.api.rate_limited if isinstance(handler, GatewayHandler) else None,
        admit=handler.admit if isinstance(handler, MxHandler) else None,
        hostname=settings.smtp_hostname,
        ident="Postgate ESMTP",
        data_size_limit=settings.smtp_max_message_bytes,
        decode_data=False,
        enable_SMTPUTF8=False,
        require_starttls=False,
        timeout=settings.smtp_idle_timeout_seconds,
        # A client may send any number of messages per connection; only AUTH and unknown
        # commands are capped (the AUTH failure counter in the handler closes sooner).
        command_call_limit={"AUTH": 20, "*": 1_000_000},
        **options,
    )


def batch_bytes(message: SmtpBatchMessage) -> int:
    """What a message adds to a batch body: its bytes and, at worst (every character escaped in
    JSON), its envelope, so that a batch never passes the API's body limit."""
    envelope = message.envelope
    return len(message.raw) + 128 + 2 * (len(envelope.Token) + len(envelope.MailFrom) + sum(len(r) + 3 for r in envelope.RcptTo))


async def serve(
    settings: SmtpSettings, *, started: Callable[[list[asyncio.Server]], Awaitable[None]] | None = None, stop: asyncio.Event | None = None
) -> None:
    """Listen until `stop` is set."""
    api = ApiClient(
        base_url=settings.api_url,
        timeout=settings.api_timeout_seconds,
        internal_token=settings.internal_credential,
        recipient_cache_seconds=settings.smtp_inbound_cache_seconds,
    )
    batcher: Batcher[SmtpBatchMessage, SubmitOutcome] = Batcher(
        send=api.submit_batch,
        failed=lambda reason: SubmitOutcome(status=0, message=reason),
        limits=BatchLimits(
            max_messages=settings.smtp_batch_max_messages,
            max_bytes=SMTP_BATCH_MAX_BYTES - 64 * 1024,
            max_in_flight=settings.smtp_batch_in_flight,
            window=settings.smtp_batch_window_ms / 1000,
        ),
        size=batch_bytes,
        observed=metrics.BATCH_MESSAGES,
    )
    auth: Batcher[str, AuthOutcome] = Batcher(
        send=api.authenticate_many,
        failed=lambda reason: AuthOutcome.UNAVAILABLE,
        limits=BatchLimits(
            max_messages=SMTP_AUTH_BATCH_MAX_TOKENS,
            max_bytes=SMTP_AUTH_BATCH_MAX_TOKENS * 256,
            max_in_flight=settings.smtp_batch_in_flight,
            window=settings.smtp_batch_window_ms / 1000,
        ),
        size=len,
        observed=metrics.AUTH_BATCH_TOKENS,
    )
    handler = GatewayHandler(api=api, settings=settings, batcher=batcher, auth=auth)
    context = tls_context(settings)
    loop = asyncio.get_running_loop()
    servers = []
    sessions: weakref.WeakSet[SMTP] = weakref.WeakSet()
    try:
        for port in settings.ports:
            factory = protocol_factory(handler, settings, context=context, implicit_tls=False, sessions=sessions)
            servers.append(await loop.create_server(factory, host=settings.smtp_host, port=port))
        if context is not None and settings.smtp_tls_port:
            factory = protocol_factory(handler, settings, context=context, implicit_tls=True, sessions=sessions)
            servers.append(await loop.create_server(factory, host=settings.smtp_host, port=settings.smtp_tls_port, ssl=context))
        if settings.smtp_inbound_port:
            inbound = MxHandler(api=api, settings=settings)

            def make_inbound() -> SMTP:
                # Like an MX: no AUTH, STARTTLS offered when a certificate is configured.
                protocol = smtp_protocol(inbound, settings, auth_required=False, tls_context=context)
                sessions.add(protocol)
                return protocol

            servers.append(await loop.create_server(make_inbound, host=settings.smtp_host, port=settings.smtp_inbound_port))
        log.info("SMTP gateway listening on %s ports %s", settings.smtp_host, [s.sockets[0].getsockname()[1] for s in servers])
        if settings.smtp_inbound_port:
            log.info(
                "MX listener on port %s: inbound mail for <InboundHash>@%s and the servers' InboundDomains, reports for %s",
                settings.smtp_inbound_port,
                settings.inbound_domain,
                settings.return_path_domain,
            )
        if started is not None:
            await started(servers)
        await (stop or asyncio.Event()).wait()
    finally:
        for server in servers:
            server.close()
        # Connections still open are closed too: a client mid-DATA has had no 250, so it keeps
        # its message and retries elsewhere or later.
        for session in list(sessions):
            if session.transport is not None:
                session.transport.close()
        for server in servers:
            await server.wait_closed()
        await batcher.aclose()
        await auth.aclose()
        await api.aclose()
