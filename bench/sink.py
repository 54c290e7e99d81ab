"""A delivery sink: aiosmtpd answering 250 to every message (the ceiling of the delivery path's far end)."""

from __future__ import annotations

import asyncio
import sys

from aiosmtpd.smtp import SMTP, Envelope, Session


class Handler:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 Ok: queued"


async def main(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(lambda: SMTP(Handler(), data_size_limit=20 * 1024 * 1024), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
