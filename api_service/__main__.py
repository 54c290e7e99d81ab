"""`python -m api_service`: serve the API with uvicorn."""

from __future__ import annotations

import secrets
import sys

import uvicorn

from api_service.config import get_settings
from shared.constants import account_token_problem


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


def main() -> None:
    settings = get_settings()
    refuse_weak_account_token(settings.account_token)
    uvicorn.run(
        "api_service.main:create_app",
        factory=True,
        host=settings.api_host,
        port=settings.api_port,
        log_level="info",
        access_log=settings.api_access_log,
        workers=settings.api_workers,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
