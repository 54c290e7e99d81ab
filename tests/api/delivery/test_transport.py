"""Reading OUTBOUND_RELAY."""

from __future__ import annotations

import pytest

from api_service.delivery.transport import parse_relay


@pytest.mark.parametrize(
    ("value", "host", "port", "user", "starttls"),
    [
        ("smtp://127.0.0.1:2525", "127.0.0.1", 2525, None, False),
        ("smtp://u%40x:p@relay.example:587?starttls=true", "relay.example", 587, "u@x", True),
    ],
)
def test_parse_relay(value: str, host: str, port: int, user: str | None, starttls: bool) -> None:
    relay = parse_relay(value)
    assert relay is not None
    assert (relay.host, relay.port, relay.username, relay.starttls) == (host, port, user, starttls)
    assert parse_relay("mx") is None
