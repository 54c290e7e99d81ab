"""An httpx client that connects only where `netguard` permits: for URLs users give (webhooks).

The check sits in the connection pool's network backend, so it runs for every connection the
client opens — the first request and every redirect hop alike — on the very address it then
connects to (no second lookup for DNS rebinding to change). The URL keeps its host name, so the
Host header, TLS SNI and certificate checks are the ordinary ones for that name.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterable, Sequence

import dns.asyncresolver
import httpcore
import httpx

from api_service.core.netguard import AddressRefused, IPNetwork, ResolveError, resolve_public


class AddressNotAllowed(httpcore.ConnectError):
    """The target resolves only to addresses the guard refuses; nothing was connected to."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, *, allowed: Sequence[IPNetwork], resolver: dns.asyncresolver.Resolver | None, setting: str) -> None:
        self.allowed = list(allowed)
        self.resolver = resolver
        self.setting = setting
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await resolve_public(host, port, allowed=self.allowed, resolver=self.resolver)
        except AddressRefused as exc:
            raise AddressNotAllowed(
                f"{host} resolves to non-public address {', '.join(exc.addresses)}; not connecting (see {self.setting})"
            ) from None
        except ResolveError as exc:
            raise httpcore.ConnectError(str(exc)) from None
        failure: Exception = httpcore.ConnectError(f"{host}: no address")
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(ip, port, timeout=timeout, local_address=local_address, socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowed("Unix sockets are never a permitted target")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    def __init__(
        self,
        *,
        allowed: Sequence[IPNetwork],
        resolver: dns.asyncresolver.Resolver | None,
        setting: str,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        # No proxy from the environment: a proxy would make the connection, out of the guard's sight.
        super().__init__(trust_env=False, limits=limits)
        # httpx takes no network backend; its pool is built again, as httpx builds it, with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allowed=allowed, resolver=resolver, setting=setting),
        )


def guarded_client(
    *,
    allowed: Sequence[IPNetwork],
    resolver: dns.asyncresolver.Resolver | None,
    timeout: float,
    max_redirects: int = 5,
    setting: str = "WEBHOOK_ALLOWED_NETWORKS",
    ssl_context: ssl.SSLContext | None = None,
    follow_redirects: bool = True,
) -> httpx.AsyncClient:
    """A client for user-given URLs; redirects are followed (unless told not to), every hop through the guard."""
    return httpx.AsyncClient(
        transport=GuardedTransport(allowed=allowed, resolver=resolver, setting=setting, ssl_context=ssl_context),
        timeout=timeout,
        follow_redirects=follow_redirects,
        max_redirects=max_redirects,
        trust_env=False,
    )
