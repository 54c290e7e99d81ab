"""The API's HTTP/1.1 protocol for uvicorn: its httptools protocol with the read limits uvicorn lacks.

uvicorn closes a connection that stays idle `timeout_keep_alive` seconds after a response, but waits
forever for a request that was begun and not finished: a client that sent half a header block, or
half a body, held a connection (and, for a body, a request task) for as long as it liked, and a
header block had no size limit with httptools (`h11_max_incomplete_event_size` only limits h11).
Here:

- the request line and headers must arrive within `HEADER_TIMEOUT_SECONDS` of the connection or of
  the previous response, and hold at most `MAX_HEADER_BYTES` (else 431, and the connection closes);
- a body must keep coming: `BODY_IDLE_TIMEOUT_SECONDS` without a byte of it (while the app waits for
  it) closes the connection, and the app's `receive` hears `http.disconnect`.

`api_service.__main__` selects it by its import string (`HTTP_PROTOCOL`), which a worker process
started by uvicorn imports by itself.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HTTP_PROTOCOL = "api_service.core.serving:GuardedHttpProtocol"
KEEP_ALIVE_SECONDS = 5  # an idle keep-alive connection is closed after this
HEADER_TIMEOUT_SECONDS = 15.0
BODY_IDLE_TIMEOUT_SECONDS = 30.0
MAX_HEADER_BYTES = 64 * 1024
_TOO_LARGE_TEXT = b"The request's header block is too large."
TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_TOO_LARGE_TEXT), _TOO_LARGE_TEXT)
)


def read_limits() -> dict[str, Any]:
    """uvicorn's options for the limits above (the same for `python -m api_service` and the tests' servers):
    this protocol, the keep-alive timeout, and the header limit should uvicorn ever serve with h11."""
    return {"http": HTTP_PROTOCOL, "timeout_keep_alive": KEEP_ALIVE_SECONDS, "h11_max_incomplete_event_size": MAX_HEADER_BYTES}


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a header read deadline, a header size limit and a body idle timeout."""

    header_timeout: float = HEADER_TIMEOUT_SECONDS
    body_idle_timeout: float = BODY_IDLE_TIMEOUT_SECONDS
    max_header_bytes: int = MAX_HEADER_BYTES

    _head_timer: asyncio.TimerHandle | None = None
    _body_timer: asyncio.TimerHandle | None = None
    _in_head = False
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        began_in_head = self._in_head
        super().data_received(data)
        if self._in_head and began_in_head and not self.transport.is_closing():
            # Counted from the first whole chunk read inside a head: never a previous body's tail.
            self._head_bytes += len(data)
            if self._head_bytes > self.max_header_bytes:
                self.logger.warning("Request header block over %d bytes: refused.", self.max_header_bytes)
                self.transport.write(TOO_LARGE)
                self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_head, self._head_bytes = True, 0
        if self._head_timer is None:  # a request begun while the previous one is answered
            self._await_head()

    def on_headers_complete(self) -> None:
        self._in_head = False
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().on_headers_complete()
        if any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers):
            self._arm_body_timer()

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        if self._body_timer is not None:
            self._arm_body_timer()

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline and not self.transport.is_closing():
            self._await_head()

    def _await_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._body_timer is not None:  # a body answered early (a 413) still arriving: its own timer governs
            self._await_head()
        elif (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def _arm_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
        self._body_timer = self.loop.call_later(self.body_idle_timeout, self._body_timed_out)

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.cycle is None or not self.cycle.more_body:
            return
        if self.flow.read_paused:  # the app is not reading yet: the client is not the one waiting
            self._arm_body_timer()
            return
        self.logger.warning("Request body stalled for %.0f s: connection closed.", self.body_idle_timeout)
        self.transport.close()

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
