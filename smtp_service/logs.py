"""The gateway's logs: readable by default, JSON with `LOG_FORMAT=json`, and `Throttle` for lines
that repeat while the API is down. The same as `api_service.core.logs`, which the gateway may not
import (it reaches the API over HTTP only)."""

from __future__ import annotations

import logging
import logging.config
import threading
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# aiosmtpd logs every command (AUTH responses too, at DEBUG); httpx every request. The session
# line (smtp_service.session) replaces both.
QUIET_LOGGERS = ("mail.log", "httpx", "httpcore")


class GatewayJsonFormatter(JsonFormatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__(*args, **kwargs)


def configure_logging(*, fmt: str = "text", level: str = "INFO") -> None:
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.GatewayJsonFormatter", "fmt": "%(levelname)s %(name)s %(message)s"}
        if fmt == "json"
        else {"format": TEXT_FORMAT}
    )
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {"default": formatter},
            "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}},
            "root": {"handlers": ["default"], "level": level.upper()},
            "loggers": {name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        }
    )


class Throttle:
    """At most one line per `interval` seconds for each key; the next line says how many were held back."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def log(self, logger: logging.Logger, level: int, key: str, msg: str, *args: object) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.interval:
                self._last[key] = (last[0], last[1] + 1)
                return False
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = (now, 0)
        held = last[1] if last is not None else 0
        if held:
            msg += " (%d similar lines held back)"
            args = (*args, held)
        logger.log(level, msg, *args, extra={"held_back": held})
        return True
