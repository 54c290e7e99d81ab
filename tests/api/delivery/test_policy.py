"""The delivery policy (file, providers, pools, warm-up) and the shaping rules, as pure functions."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from api_service.core.gcra import MICROSECONDS
from api_service.delivery.policy import DEFAULT_LIMITS, Limits, Policy, PolicyError, PolicySource, destination_key, parse_policy
from api_service.delivery.shaping import Buckets, Learned, Throttle, admit, after_batch, retry_hint, throttle_of

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)


class TestDestinations:
    def test_mx_hosts_of_one_provider_share_its_destination(self) -> None:
        policy = Policy()
        assert destination_key(hosts=["aspmx.l.google.com", "alt1.aspmx.l.google.com"], policy=policy) == "google"
        assert destination_key(hosts=["example-com.mail.protection.outlook.com"], policy=policy) == "outlook"
        assert destination_key(hosts=["mta5.am0.yahoodns.net"], policy=policy) == "yahoo"
        assert policy.limits("google").connections == 10

    def test_other_mx_hosts_are_their_own_destination_with_the_default_limits(self) -> None:
        policy = Policy()
        key = destination_key(hosts=["mx2.example.net", "MX1.example.net."], policy=policy)
        assert key == "mx:mx1.example.net,mx2.example.net"
        assert policy.limits(key) == DEFAULT_LIMITS

    def test_a_mix_of_providers_is_not_a_provider(self) -> None:
        assert destination_key(hosts=["aspmx.l.google.com", "mx.example.net"], policy=Policy()).startswith("mx:")

    def test_hosts_named_like_a_provider_do_not_belong_to_it(self) -> None:
        assert destination_key(hosts=["mx.notgoogle.com"], policy=Policy()) == "mx:mx.notgoogle.com"


class TestBuiltInRates:
    def test_only_other_destinations_get_the_default_600_a_minute(self) -> None:
        policy = parse_policy("")
        relay = policy.limits("relay:smtp.example.net:587")
        assert (relay.per_second, relay.per_minute, relay.per_hour) == (None, None, None)  # learning finds a relay's rate
        google = policy.limits("google")
        assert (google.per_second, google.per_minute) == (20.0, None)
        assert policy.limits("mx:mx.example.net").per_minute == DEFAULT_LIMITS.per_minute == 600.0


class TestPolicyFile:
    def test_file_overrides_defaults_providers_and_destinations(self) -> None:
        policy = parse_policy(
            """
            [default]
            connections = 2
            per_minute = 60

            [relay]
            per_second = 14

            [providers.google]
            connections = 4

            [providers.acme]
            mx = ["acme-mail.net"]
            connections = 1

            [destinations."mx:mx.example.net"]
            messages_per_connection = 5
            """
        )
        assert policy.limits("mx:other.example") == Limits(connections=2, messages_per_connection=100, per_second=None, per_minute=60.0)
        assert policy.limits("relay:smtp.example:587").per_second == 14.0
        assert policy.limits("google").connections == 4
        assert policy.limits("google").per_second == 20.0  # the rest of the built-in google limits stay
        assert destination_key(hosts=["in1.acme-mail.net"], policy=policy) == "acme"
        assert policy.limits("acme").connections == 1
        assert policy.limits("mx:mx.example.net").messages_per_connection == 5

    @pytest.mark.parametrize(
        ("text", "says"),
        [
            ("[default]\nconnections = 0", "default.connections"),
            ("[default]\nper_second = -1", "default.per_second"),
            ("[providers.acme]\nconnections = 1", "needs mx"),
            ("[pools.a]\nips = ['not an ip']", "not an IP address"),
            ("[pool_for]\ndefault = 'missing'", "does not define"),
            ("[warmup]\ndefault = [0]", "warmup.default"),
            ("not toml [", "not valid TOML"),
        ],
    )
    def test_bad_file_is_refused_with_a_reason(self, text: str, says: str) -> None:
        with pytest.raises(PolicyError, match=says):
            parse_policy(text)

    def test_file_is_read_again_when_it_changes_and_a_broken_edit_keeps_the_last(self, tmp_path: Path) -> None:
        path = tmp_path / "policy.toml"
        path.write_text("[default]\nconnections = 2\n")
        source = PolicySource(str(path))
        assert source.current().default.connections == 2
        path.write_text("[default]\nconnections = 7\n")
        os.utime(path, (1, 1))
        assert source.current().default.connections == 7
        path.write_text("[default]\nconnections = 'many'\n")
        os.utime(path, (2, 2))
        assert source.current().default.connections == 7

    def test_pools_route_servers_and_streams(self) -> None:
        policy = parse_policy(
            """
            [pools.transactional]
            ips = [{ address = "203.0.113.10", helo = "mta1.example.com" }]
            [pools.bulk]
            ips = ["203.0.113.20", { address = "203.0.113.21", helo = "bulk2.example.com", warmup_since = 2026-12-01 }]
            [pool_for]
            default = "transactional"
            streams = { broadcast = "bulk" }
            servers = { "7" = "bulk" }
            """
        )
        assert [ip.address for ip in policy.pool_for(server_id=1, stream="outbound")] == ["203.0.113.10"]
        assert [ip.address for ip in policy.pool_for(server_id=1, stream="broadcast")] == ["203.0.113.20", "203.0.113.21"]
        assert [ip.address for ip in policy.pool_for(server_id=7, stream="outbound")] == ["203.0.113.20", "203.0.113.21"]

    def test_source_ips_setting_is_the_default_pool(self) -> None:
        policy = parse_policy("", source_ips="127.0.0.2=a.example, 127.0.0.3")
        assert [(ip.address, ip.helo) for ip in policy.pool_for(server_id=1, stream="outbound")] == [
            ("127.0.0.2", "a.example"),
            ("127.0.0.3", ""),
        ]


class TestWarmup:
    def test_allowance_grows_day_by_day_then_stops_capping(self) -> None:
        policy = parse_policy("[pools.p]\nips = [{ address = '127.0.0.2', warmup_since = 2026-12-01 }]\n[warmup]\ngoogle = [10, 20]\n")
        [ip] = policy.pools["p"]
        assert policy.allowance(ip=ip, provider="google", today=date(2026, 12, 1)) == 10
        assert policy.allowance(ip=ip, provider="google", today=date(2026, 12, 2)) == 20
        assert policy.allowance(ip=ip, provider="google", today=date(2026, 12, 3)) is None
        assert policy.allowance(ip=ip, provider="mx:mx.example.net", today=date(2026, 12, 2)) == 100  # the default schedule

    def test_an_ip_without_a_start_day_is_warm(self) -> None:
        policy = parse_policy("[pools.p]\nips = ['127.0.0.2']\n")
        assert policy.allowance(ip=policy.pools["p"][0], provider="google", today=date(2026, 12, 1)) is None


class TestReplies:
    @pytest.mark.parametrize(
        ("code", "text", "kind"),
        [
            (421, "4.7.28 Gmail has detected an unusual rate of unsolicited mail", Throttle.RATE),
            (421, "4.7.0 Too many concurrent SMTP connections from this IP", Throttle.CONNECTIONS),
            (454, "Throttling failure: Maximum sending rate exceeded.", Throttle.RATE),
            (451, "4.7.500 Server busy. Please try again later", Throttle.RATE),
            (421, "4.7.0 [TSS04] Messages from 203.0.113.1 temporarily deferred", Throttle.RATE),
            (450, "4.2.0 Greylisted, try again later", None),
            (451, "4.3.0 Temporary lookup failure", None),
            (550, "5.7.1 rate limit exceeded", None),
        ],
    )
    def test_throttling_replies_are_told_apart(self, code: int, text: str, kind: Throttle | None) -> None:
        assert throttle_of(code, text) is kind

    def test_a_421_greeting_is_a_connection_limit(self) -> None:
        assert throttle_of(421, "mx.example.net Service not available", greeting=True) is Throttle.CONNECTIONS

    def test_retry_hints(self) -> None:
        assert retry_hint("try again in 5 minutes") == 300
        assert retry_hint("Please retry after 30 seconds") == 30
        assert retry_hint("try again later") is None


class TestLearning:
    limits = Limits(connections=10, per_second=10.0)

    def test_throttle_halves_connections_and_deliveries_raise_them_slowly(self) -> None:
        state = after_batch(
            Learned(connections=10),
            delivered=0,
            throttled={Throttle.CONNECTIONS},
            hint=None,
            limits=self.limits,
            learning=Policy().learning,
            now=NOW,
        )
        assert state.connections == 5
        assert state.throttled_at == NOW
        later = NOW + timedelta(minutes=5)
        raised = after_batch(state, delivered=49, throttled=set(), hint=None, limits=self.limits, learning=Policy().learning, now=later)
        assert raised.connections == 5
        raised = after_batch(raised, delivered=1, throttled=set(), hint=None, limits=self.limits, learning=Policy().learning, now=later)
        assert raised.connections == 6

    def test_no_increase_right_after_a_throttle_and_never_above_the_cap_or_below_the_floor(self) -> None:
        learning = Policy().learning
        state = Learned(connections=2, throttled_at=NOW)
        assert (
            after_batch(state, delivered=500, throttled=set(), hint=None, limits=self.limits, learning=learning, now=NOW).connections == 2
        )
        state = Learned(connections=10)
        assert (
            after_batch(state, delivered=500, throttled=set(), hint=None, limits=self.limits, learning=learning, now=NOW).connections == 10
        )
        state = Learned(connections=1)
        assert (
            after_batch(
                state, delivered=0, throttled={Throttle.CONNECTIONS}, hint=None, limits=self.limits, learning=learning, now=NOW
            ).connections
            == 1
        )

    def test_rate_throttle_halves_the_rate(self) -> None:
        state = after_batch(
            Learned(connections=3),
            delivered=0,
            throttled={Throttle.RATE},
            hint=None,
            limits=self.limits,
            learning=Policy().learning,
            now=NOW,
        )
        assert state.rate_factor == 0.5
        assert state.connections == 3

    def test_throttling_in_a_row_suspends_for_longer_each_time(self) -> None:
        learning = Policy().learning
        state = Learned(connections=3)
        for _ in range(learning.suspend_after - 1):
            state = after_batch(state, delivered=0, throttled={Throttle.RATE}, hint=None, limits=self.limits, learning=learning, now=NOW)
        assert state.suspended_until is None
        state = after_batch(state, delivered=0, throttled={Throttle.RATE}, hint=None, limits=self.limits, learning=learning, now=NOW)
        assert state.suspended_until == NOW + timedelta(seconds=learning.suspend_seconds)
        state = after_batch(state, delivered=0, throttled={Throttle.RATE}, hint=None, limits=self.limits, learning=learning, now=NOW)
        assert state.suspended_until == NOW + timedelta(seconds=2 * learning.suspend_seconds)

    def test_a_retry_hint_sets_the_suspension(self) -> None:
        state = after_batch(
            Learned(connections=3),
            delivered=0,
            throttled={Throttle.RATE},
            hint=600,
            limits=self.limits,
            learning=Policy().learning,
            now=NOW,
        )
        assert state.suspended_until == NOW + timedelta(minutes=10)


class TestAdmission:
    def test_rate_admits_a_burst_then_waits(self) -> None:
        limits = Limits(per_second=5.0, per_minute=None)
        first = admit(want=20, limits=limits, factor=1.0, buckets=Buckets(), now_us=0)
        assert first.granted == 5
        second = admit(want=20, limits=limits, factor=1.0, buckets=first.buckets, now_us=0)
        assert second.granted == 0
        assert 0 < second.wait_us <= MICROSECONDS
        later = admit(want=20, limits=limits, factor=1.0, buckets=first.buckets, now_us=MICROSECONDS)
        assert later.granted == 5

    def test_the_tightest_rate_decides_and_the_factor_scales_it(self) -> None:
        limits = Limits(per_second=100.0, per_minute=10.0)
        assert admit(want=50, limits=limits, factor=1.0, buckets=Buckets(), now_us=0).granted == 10
        assert admit(want=50, limits=limits, factor=0.5, buckets=Buckets(), now_us=0).granted == 5

    def test_unlimited_rates_admit_everything(self) -> None:
        assert admit(want=1000, limits=Limits(per_second=None, per_minute=None), factor=1.0, buckets=Buckets(), now_us=0).granted == 1000
