"""`python -m smtp_service`: run the SMTP gateway until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import sys

import uvloop
from shared.constants import account_token_problem

from smtp_service.config import SmtpSettings
from smtp_service.logs import configure_logging
from smtp_service.metrics import serve_metrics
from smtp_service.server import serve


async def _run(settings: SmtpSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await serve(settings, stop=stop)


def main() -> None:
    settings = SmtpSettings()
    configure_logging(fmt=settings.log_format, level=settings.log_level)
    if not settings.internal_credential:
        # /internal/smtp/* answers only a gateway with the API's credential: every AUTH would fail.
        print(
            "postgate smtp: refusing to start: set the same INTERNAL_TOKEN (or ACCOUNT_TOKEN) as the API's "
            f"(for example INTERNAL_TOKEN={secrets.token_hex(20)} for both)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)
    problem = account_token_problem(settings.account_token)
    if settings.smtp_inbound_port and problem is not None:
        # The MX listener hands mail and reports to the API with the account token.
        print(
            f"postgate smtp: refusing to start the MX listener: {problem}; set the same ACCOUNT_TOKEN as the API's "
            f"(for example ACCOUNT_TOKEN={secrets.token_hex(20)} for both)",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)
    stop_metrics = None
    if settings.smtp_metrics_port:
        stop_metrics = serve_metrics(host=settings.metrics_host, port=settings.smtp_metrics_port, token=settings.metrics_token)
        logging.getLogger("postgate.smtp").info(
            "SMTP gateway metrics on http://%s:%d/metrics", settings.metrics_host, settings.smtp_metrics_port
        )
    try:
        # uvloop: the loop of the SMTP sessions and the httpx pool. On a loaded 2-core box it cost
        # about a tenth less CPU per message than asyncio's loop (bench.noop_smtp); the tests run
        # the gateway on it too, STARTTLS included.
        uvloop.run(_run(settings))
    finally:
        if stop_metrics is not None:
            stop_metrics()


if __name__ == "__main__":
    main()
