"""An MX that imposes limits, as the big providers do: at most `max_connections` at once (421 to the
connection beyond), optionally a 421 after `max_per_connection` messages, slow replies, and a
throttling reply to MAIL while `throttle_mail` is set. It counts what the tests measure: connections
accepted and refused, the most open at once, messages per connection, and who connected from where.

A small asyncio SMTP server of its own (not aiosmtpd) so that the connection count is exact: a
connection counts from accept until its socket is closed.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field


@dataclass
class Delivery:
    mail_from: str
    rcpt_tos: list[str]
    peer: str


@dataclass
class LimitedMx:
    max_connections: int = 2
    max_per_connection: int = 0  # 0: no limit
    delay: float = 0.0  # seconds before each reply to DATA
    throttle_mail: str = ""  # when set, the reply to MAIL (e.g. "421 4.7.28 rate limited")
    refuse_peers: dict[str, str] = field(default_factory=dict)  # client address → greeting that refuses it
    open: int = 0
    peak: int = 0
    accepted: int = 0
    refused: int = 0
    per_connection: list[int] = field(default_factory=list)
    received: list[Delivery] = field(default_factory=list)
    peers: set[str] = field(default_factory=set)
    helos: set[str] = field(default_factory=set)
    server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(self._session, host, port, reuse_address=True)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername")[0])
        if peer in self.refuse_peers:
            self.refused += 1
            writer.write(self.refuse_peers[peer].encode() + b"\r\n")
            await self._close(writer)
            return
        if self.open >= self.max_connections:
            self.refused += 1
            writer.write(b"421 4.7.0 mx.test Too many concurrent connections from your IP, try again later\r\n")
            await self._close(writer)
            return
        self.open += 1
        self.peak = max(self.peak, self.open)
        self.accepted += 1
        self.peers.add(peer)
        sent = 0
        mail_from, rcpts = "", list[str]()
        try:
            writer.write(b"220 mx.test ESMTP\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    self.helos.add(line[5:].strip().decode())
                    writer.write(b"250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n" if verb == b"EHLO" else b"250 mx.test\r\n")
                elif verb == b"MAIL":
                    if self.throttle_mail:
                        writer.write(self.throttle_mail.encode() + b"\r\n")
                        if self.throttle_mail.startswith("421"):
                            break
                        continue
                    if self.max_per_connection and sent >= self.max_per_connection:
                        writer.write(b"421 4.7.0 Too many messages in this connection\r\n")
                        break
                    mail_from, rcpts = line[10:].strip().decode().strip("<>"), []
                    writer.write(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    rcpts.append(line[8:].strip().decode().strip("<>"))
                    writer.write(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await writer.drain()
                    while await reader.readline() not in (b".\r\n", b""):
                        pass
                    if self.delay:
                        await asyncio.sleep(self.delay)
                    self.received.append(Delivery(mail_from=mail_from, rcpt_tos=rcpts, peer=peer))
                    sent += 1
                    writer.write(b"250 2.0.0 Ok: queued\r\n")
                elif verb == b"RSET":
                    mail_from, rcpts = "", []
                    writer.write(b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    break
                else:
                    writer.write(b"502 5.5.2 Not implemented\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            await self._close(writer)
            self.per_connection.append(sent)
            self.open -= 1

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        try:
            await writer.drain()
            writer.close()
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
