"""`python -m api_service`: serve the API with uvicorn."""

from __future__ import annotations

import uvicorn

from api_service.config import get_settings


def main() -> None:
    settings = get_settings()
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
