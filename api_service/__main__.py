"""`python -m api_service`: serve the API with uvicorn."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile

import uvicorn

from api_service.config import Settings, get_settings
from api_service.core.logs import logging_config
from api_service.core.serving import read_limits
from shared.constants import account_token_problem

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"  # read by prometheus-client when it is first imported


def refuse_weak_account_token(token: str) -> None:
    """Exit with a message (and a freshly generated token to use) unless `token` is a real secret."""
    problem = account_token_problem(token)
    if problem is not None:
        print(
            f"postgate: refusing to start: {problem}. Anyone who can reach the API could use it to manage every server.\n"
            f"postgate: set ACCOUNT_TOKEN to a secret of your own, for example this freshly generated one:\n"
            f"ACCOUNT_TOKEN={secrets.token_hex(20)}",
            file=sys.stderr,
            flush=True,
        )
        sys.exit(2)


def prepare_multiprocess_metrics(workers: int) -> str | None:
    """With several worker processes, each writes its metrics to a shared directory that a scrape
    of any of them adds up. It must be set before the workers (and prometheus-client) start.
    Returns the directory when it was made here (to remove at exit)."""
    if workers <= 1:
        return None
    given = os.environ.get(MULTIPROCESS_ENV)
    path = given or tempfile.mkdtemp(prefix="postgate-metrics-")
    os.environ[MULTIPROCESS_ENV] = path
    from api_service.core.metrics import clear_multiprocess_dir  # imports prometheus-client: after the variable is set

    clear_multiprocess_dir(path)
    return None if given else path


def main() -> None:
    settings = get_settings()
    refuse_weak_account_token(settings.account_token)
    made = prepare_multiprocess_metrics(settings.api_workers)
    try:
        run(settings)
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)


def run(settings: Settings) -> None:
    uvicorn.run(
        "api_service.main:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_config=logging_config(fmt=settings.log_format, level=settings.log_level),
        log_level=settings.log_level.lower(),
        # Postgate's own request line (core.observe, API_ACCESS_LOG) replaces uvicorn's.
        access_log=False,
        workers=settings.api_workers,
        proxy_headers=False,
        # Read limits (README "Security and guarantees"): a header deadline and size limit, a body idle
        # timeout and the keep-alive timeout (core.serving).
        **read_limits(),
    )


if __name__ == "__main__":
    main()
