"""The SSRF guard: pure checks against the ipaddress module's own properties and the RFC ranges."""

from __future__ import annotations

from collections.abc import Iterator
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_service.core.netguard import (
    AddressRefused,
    HostNotFound,
    IPAddress,
    IPNetwork,
    LookupFailed,
    dns_resolver,
    is_public,
    parse_networks,
    resolve_public,
)
from tests.api.core.dns_server import Zone, dns_server

ipv4s = st.integers(min_value=0, max_value=2**32 - 1).map(IPv4Address)
ipv6s = st.integers(min_value=0, max_value=2**128 - 1).map(IPv6Address)
addresses: st.SearchStrategy[IPAddress] = st.one_of(ipv4s, ipv6s)


def mapped(address: IPv4Address) -> IPv6Address:
    return IPv6Address(0xFFFF_0000_0000 | int(address))


def sixtofour(address: IPv4Address) -> IPv6Address:
    return IPv6Address((0x2002 << 112) | (int(address) << 80) | 1)


def nat64(address: IPv4Address) -> IPv6Address:
    return IPv6Address(int(IPv6Address("64:ff9b::")) | int(address))


def special(address: IPAddress) -> bool:
    """What the brief says is never public, in the ipaddress module's own words."""
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
        or (isinstance(address, IPv4Address) and address in IPv4Network("100.64.0.0/10"))
    )


class TestIsPublic:
    @pytest.mark.parametrize(
        "text",
        [
            "127.0.0.1",
            "127.1.2.3",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "224.0.0.1",
            "239.255.255.250",
            "0.0.0.0",  # noqa: S104 - an address under test, not a bind
            "0.1.2.3",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "ff0e::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:100.64.0.1",
            "::127.0.0.1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
        ],
    )
    def test_internal_address_is_refused(self, text: str) -> None:
        assert not is_public(text, allowed=[])

    @pytest.mark.parametrize("text", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700::1111", "2a00:1450:4001::1", "64:ff9b::808:808"])
    def test_public_address_is_permitted(self, text: str) -> None:
        assert is_public(text, allowed=[])

    def test_allow_list_opens_loopback_and_its_mapped_form(self) -> None:
        allowed = parse_networks("127.0.0.0/8")
        assert is_public("127.0.0.2", allowed=allowed)
        assert is_public("::ffff:127.0.0.2", allowed=allowed)
        assert not is_public("::1", allowed=allowed)
        assert not is_public("10.0.0.1", allowed=allowed)

    @given(ipv4s)
    def test_ipv4_is_public_exactly_when_no_property_marks_it_special(self, address: IPv4Address) -> None:
        assert is_public(address, allowed=[]) == (not special(address))

    @given(ipv6s)
    def test_public_ipv6_has_no_special_property(self, address: IPv6Address) -> None:
        if is_public(address, allowed=[]) and address not in IPv6Network("64:ff9b::/96"):
            assert not special(address)
            assert not address.is_site_local

    @given(ipv4s)
    def test_ipv4_mapped_form_is_judged_as_the_ipv4_address(self, address: IPv4Address) -> None:
        assert is_public(mapped(address), allowed=[]) == is_public(address, allowed=[])

    @given(ipv4s)
    def test_6to4_of_a_refused_ipv4_is_refused(self, address: IPv4Address) -> None:
        if not is_public(address, allowed=[]):
            assert not is_public(sixtofour(address), allowed=[])

    @given(ipv4s)
    def test_nat64_form_is_judged_as_the_ipv4_address(self, address: IPv4Address) -> None:
        assert is_public(nat64(address), allowed=[]) == is_public(address, allowed=[])

    @given(addresses, st.integers(min_value=0, max_value=128))
    def test_address_inside_an_allowed_network_is_permitted(self, address: IPAddress, prefix: int) -> None:
        network = ip_network((address, min(prefix, address.max_prefixlen)), strict=False)
        assert is_public(address, allowed=[network])

    @given(ipv4s, st.integers(min_value=0, max_value=32))
    def test_allowed_ipv4_network_covers_the_mapped_form(self, address: IPv4Address, prefix: int) -> None:
        network = ip_network((address, prefix), strict=False)
        assert is_public(mapped(address), allowed=[network])

    @given(addresses)
    def test_string_and_object_agree(self, address: IPAddress) -> None:
        assert is_public(str(address), allowed=[]) == is_public(address, allowed=[])


class TestParseNetworks:
    def test_empty_is_no_network(self) -> None:
        assert parse_networks("") == []
        assert parse_networks(" , ") == []

    def test_list_with_spaces_and_a_bare_address(self) -> None:
        assert parse_networks("127.0.0.0/8, fd00::/8,192.0.2.7") == [
            IPv4Network("127.0.0.0/8"),
            IPv6Network("fd00::/8"),
            IPv4Network("192.0.2.7/32"),
        ]

    @pytest.mark.parametrize("value", ["10.0.0.1/8", "localhost", "10.0.0.0/33", "10.0.0.0/8;fd00::/8"])
    def test_bad_item_is_named(self, value: str) -> None:
        with pytest.raises(ValueError, match="not a network"):
            parse_networks(value)

    @given(st.lists(st.tuples(addresses, st.integers(min_value=0, max_value=128)), max_size=5))
    def test_round_trip(self, items: list[tuple[IPAddress, int]]) -> None:
        networks: list[IPNetwork] = [ip_network((a, min(p, a.max_prefixlen)), strict=False) for a, p in items]
        assert parse_networks(", ".join(str(n) for n in networks)) == networks


class TestDnsResolver:
    @pytest.mark.parametrize(
        ("value", "server", "port"),
        [("127.0.0.1", "127.0.0.1", 53), ("127.0.0.1:5353", "127.0.0.1", 5353), ("::1", "::1", 53), ("[::1]:5353", "::1", 5353)],
    )
    def test_host_and_port(self, value: str, server: str, port: int) -> None:
        resolver = dns_resolver(value)
        assert [str(ip_address(str(s))) for s in resolver.nameservers] == [server]
        assert resolver.port == port

    @pytest.mark.parametrize("value", ["dns.example", "127.0.0.1:0", "127.0.0.1:dns", "[::1]5353"])
    def test_bad_value_is_refused(self, value: str) -> None:
        with pytest.raises(ValueError, match="DNS_RESOLVER"):
            dns_resolver(value)


@pytest.fixture
def zone() -> Iterator[tuple[Zone, str]]:
    with dns_server() as running:
        yield running


@pytest.mark.asyncio
class TestResolvePublic:
    async def test_only_permitted_addresses_ipv4_first(self, zone: tuple[Zone, str]) -> None:
        zone[0].aaaa("hook.example.net", "2606:4700::1111", "fd00::1")
        zone[0].a("hook.example.net", "10.0.0.1", "93.184.216.34")
        got = await resolve_public("hook.example.net", 443, allowed=[], resolver=dns_resolver(zone[1]))
        assert got == ["93.184.216.34", "2606:4700::1111"]

    async def test_every_address_refused_names_them(self, zone: tuple[Zone, str]) -> None:
        zone[0].a("metadata.example.net", "169.254.169.254")
        zone[0].aaaa("metadata.example.net", "::ffff:169.254.169.254")
        with pytest.raises(AddressRefused) as refused:
            await resolve_public("metadata.example.net", 80, allowed=[], resolver=dns_resolver(zone[1]))
        assert refused.value.addresses == ["169.254.169.254", "::ffff:169.254.169.254"]

    async def test_allow_list_opens_a_network(self, zone: tuple[Zone, str]) -> None:
        zone[0].a("lan.example.net", "10.0.0.7", "192.168.0.7")
        got = await resolve_public("lan.example.net", 80, allowed=parse_networks("10.0.0.0/8"), resolver=dns_resolver(zone[1]))
        assert got == ["10.0.0.7"]

    async def test_nxdomain_and_no_address_are_not_found(self, zone: tuple[Zone, str]) -> None:
        zone[0].exists("empty.example.net")
        for host in ("gone.example.net", "empty.example.net"):
            with pytest.raises(HostNotFound):
                await resolve_public(host, 80, allowed=[], resolver=dns_resolver(zone[1]))

    async def test_servfail_is_a_temporary_failure(self, zone: tuple[Zone, str]) -> None:
        zone[0].fail("broken.example.net")
        with pytest.raises(LookupFailed):
            await resolve_public("broken.example.net", 80, allowed=[], resolver=dns_resolver(zone[1]))

    async def test_ip_literal_is_checked_without_a_lookup(self, zone: tuple[Zone, str]) -> None:
        assert await resolve_public("[2606:4700::1111]", 80, allowed=[], resolver=dns_resolver(zone[1])) == ["2606:4700::1111"]
        with pytest.raises(AddressRefused):
            await resolve_public("127.0.0.1", 80, allowed=[], resolver=dns_resolver(zone[1]))
        assert zone[0].queries == []

    async def test_system_resolver_reads_the_hosts_file(self) -> None:
        with pytest.raises(AddressRefused):
            await resolve_public("localhost", 80, allowed=[], resolver=None)
        assert "127.0.0.1" in await resolve_public("localhost", 80, allowed=parse_networks("127.0.0.0/8"), resolver=None)
