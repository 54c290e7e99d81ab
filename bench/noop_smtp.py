"""The SMTP ceiling: aiosmtpd with the same AUTH scheme (user == password), answering 250 to everything."""

from __future__ import annotations

import asyncio
import sys
import warnings

import uvloop
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def authenticator(server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == auth_data.password
    return AuthResult(success=ok, handled=False)


class Handler:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        return "250 2.0.0 Ok: queued"


async def main(port: int) -> None:
    def factory() -> SMTP:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return SMTP(
                Handler(), authenticator=authenticator, auth_required=True, auth_require_tls=False, data_size_limit=10 * 1024 * 1024
            )

    server = await asyncio.get_running_loop().create_server(factory, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    # The loop the gateway runs on: the ceiling keeps the same server settings.
    uvloop.run(main(int(sys.argv[1])))
