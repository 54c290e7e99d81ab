"""Logs: readable lines by default, one JSON object a line with `LOG_FORMAT=json`, and `Throttle`,
which keeps a message that repeats (a database outage, a dead relay) to one line an interval.

Lines carry their fields twice: in the text for people, and as `extra` attributes, which become
JSON keys. Never pass a token, a password or an AUTH blob to either.
"""

from __future__ import annotations

import logging
import logging.config
import threading
import time
from typing import Any

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
JSON_FIELDS = "%(levelname)s %(name)s %(message)s"
# Libraries whose own lines are noise here or could carry secrets: aiosmtpd logs every command
# (AUTH responses at DEBUG), httpx every request URL (webhook URLs may hold credentials), and
# uvicorn's access log is replaced by Postgate's request line.
QUIET_LOGGERS = ("mail.log", "httpx", "httpcore", "uvicorn.access")


class PostgateJsonFormatter(JsonFormatter):
    """python-json-logger with short key names and without uvicorn's ANSI-coloured duplicate message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        log_data.pop("color_message", None)
        return log_data


def logging_config(*, fmt: str = "text", level: str = "INFO") -> dict[str, Any]:
    """A `dictConfig` for the root logger and uvicorn's loggers (they propagate to the root)."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.PostgateJsonFormatter", "fmt": JSON_FIELDS} if fmt == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"default": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}},
        "root": {"handlers": ["default"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }


def configure_logging(*, fmt: str = "text", level: str = "INFO") -> None:
    logging.config.dictConfig(logging_config(fmt=fmt, level=level))


class Throttle:
    """At most one line per `interval` seconds for each key; the next line says how many were held back.

    For messages that repeat while something is down: one per request or per poll would flood the
    log exactly when someone is reading it.
    """

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, tuple[float, int]] = {}

    def allow(self, key: str) -> int | None:
        """None to stay silent; else how many lines for `key` were held back since the last one."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last[0] < self.interval:
                self._last[key] = (last[0], last[1] + 1)
                return None
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = (now, 0)
            return last[1] if last is not None else 0

    def log(self, logger: logging.Logger, level: int, key: str, msg: str, *args: object, exc_info: bool = False, **fields: object) -> bool:
        """Log `msg % args` unless `key` was logged less than `interval` ago; True when it was logged."""
        held = self.allow(key)
        if held is None:
            return False
        if held:
            msg += " (%d similar lines held back)"
            args = (*args, held)
        logger.log(level, msg, *args, exc_info=exc_info, extra={**fields, "held_back": held})
        return True
