"""`python -m smtp_service`: run the SMTP gateway until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys

from shared.constants import account_token_problem

from smtp_service.config import SmtpSettings
from smtp_service.server import serve


async def _run(settings: SmtpSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop=stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = SmtpSettings()
    problem = account_token_problem(settings.account_token)
    if settings.smtp_inbound_port and problem is not None:
        # The return-path listener hands reports to the API with the account token.
        print(
            f"postgate smtp: refusing to start the return-path listener: {problem}; set the same ACCOUNT_TOKEN as the API's "
            f"(for example ACCOUNT_TOKEN={secrets.token_hex(20)} for both)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)
    asyncio.run(_run(settings))


if __name__ == "__main__":
    main()
