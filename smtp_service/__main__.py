"""`python -m smtp_service`: run the SMTP gateway until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal

from smtp_service.config import SmtpSettings
from smtp_service.server import serve


async def _run() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(SmtpSettings(), stop=stop)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(_run())


if __name__ == "__main__":
    main()
