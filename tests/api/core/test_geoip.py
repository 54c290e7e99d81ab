"""Geo of opens and clicks from a database on this machine (never a network call): geoip2fast's bundled country
file by default, or a MaxMind-format City database named by GEOIP_DATABASE."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet  # type: ignore[import-untyped]

from api_service.core.geoip import NOWHERE, Geo, MmdbLocator, locator


class TestBundled:
    @pytest.mark.parametrize(
        ("ip", "iso", "country"),
        [
            ("8.8.8.8", "US", "United States"),
            ("81.2.69.142", "GB", "United Kingdom"),
            ("1.1.1.1", "AU", "Australia"),
            ("2001:4860:4860::8888", "US", "United States"),
            ("::ffff:81.2.69.142", "GB", "United Kingdom"),
        ],
    )
    def test_public_addresses_have_their_country(self, ip: str, iso: str, country: str) -> None:
        assert locator("").locate(ip) == Geo(country_iso=iso, country=country)

    @pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "192.168.0.9", "::1", "fe80::1", "", "not an address"])
    def test_private_and_bad_addresses_have_none(self, ip: str) -> None:
        assert locator("").locate(ip) == NOWHERE

    def test_its_date_is_known(self) -> None:
        info = locator("").info
        assert info.built is not None
        assert info.built.year >= 2024


class TestMmdb:
    def test_city_database_fills_every_field(self, tmp_path: Path) -> None:
        writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"])
        writer.insert_network(
            IPSet(["81.2.69.0/24"]),
            {
                "country": {"iso_code": "GB", "names": {"en": "United Kingdom"}},
                "subdivisions": [{"iso_code": "ENG", "names": {"en": "England"}}],
                "city": {"names": {"en": "London"}},
                "location": {"latitude": 51.5142, "longitude": -0.0931},
            },
        )
        path = tmp_path / "city.mmdb"
        writer.to_db_file(str(path))
        found = MmdbLocator(str(path))
        assert found.locate("81.2.69.142") == Geo(
            country_iso="GB", country="United Kingdom", region_iso="ENG", region="England", city="London", coords="51.5142,-0.0931"
        )
        assert found.locate("8.8.8.8") == NOWHERE
        assert found.locate("10.0.0.1") == NOWHERE
        assert found.info.description == "GeoLite2-City"
        assert found.info.built is not None
