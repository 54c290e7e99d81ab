"""Log lines: JSON objects with the fields as keys, and repeated lines held back per interval."""

from __future__ import annotations

import io
import json
import logging

from api_service.core.logs import PostgateJsonFormatter, Throttle


def capture() -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PostgateJsonFormatter("%(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.propagate = False
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, stream


class TestJson:
    def test_one_object_a_line_with_fields_as_keys(self) -> None:
        logger, stream = capture()
        logger.info("POST /email 200", extra={"route": "/email", "status": 200, "color_message": "\x1b[1m"})
        line = json.loads(stream.getvalue())
        assert line["message"] == "POST /email 200"
        assert (line["level"], line["route"], line["status"]) == ("INFO", "/email", 200)
        assert "time" in line
        assert "color_message" not in line


class TestThrottle:
    def test_one_line_per_interval_then_the_count_of_those_held_back(self) -> None:
        logger, stream = capture()
        throttle = Throttle(interval=0.0)
        throttle.interval = 3600
        assert throttle.log(logger, logging.WARNING, "db", "database down: %s", "refused")
        assert not any(throttle.log(logger, logging.WARNING, "db", "database down: %s", "refused") for _ in range(99))
        assert throttle.log(logger, logging.WARNING, "other", "another problem")
        throttle.interval = 0
        assert throttle.log(logger, logging.WARNING, "db", "database down: %s", "refused")
        lines = [json.loads(raw) for raw in stream.getvalue().splitlines()]
        assert [line["message"] for line in lines] == [
            "database down: refused",
            "another problem",
            "database down: refused (99 similar lines held back)",
        ]
        assert lines[-1]["held_back"] == 99
