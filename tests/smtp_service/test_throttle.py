"""The per-IP AUTH failure table: blocks within the window, forgets IPs that went quiet."""

from __future__ import annotations

import pytest

from smtp_service.handler import IpThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


class TestIpThrottle:
    def test_blocks_after_the_limit_within_the_window(self, clock: Clock) -> None:
        throttle = IpThrottle(limit=3, window=60, clock=clock)
        for _ in range(3):
            assert not throttle.blocked("192.0.2.1")
            throttle.failed("192.0.2.1")
        assert throttle.blocked("192.0.2.1")
        assert not throttle.blocked("192.0.2.2")
        clock.now += 61
        assert not throttle.blocked("192.0.2.1")

    def test_idle_ips_are_forgotten(self, clock: Clock) -> None:
        throttle = IpThrottle(limit=30, window=600, clock=clock)
        for n in range(10_000):
            throttle.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
        assert len(throttle) == 10_000
        clock.now += 601
        throttle.failed("192.0.2.9")  # any later failure sweeps the table
        assert len(throttle) == 1

    def test_one_ip_keeps_at_most_limit_timestamps(self, clock: Clock) -> None:
        throttle = IpThrottle(limit=5, window=600, clock=clock)
        for _ in range(100_000):
            throttle.failed("192.0.2.1")
        assert len(throttle._failures["192.0.2.1"]) == 5
