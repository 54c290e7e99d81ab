"""Where an open or a click came from, read from a database on this machine: never a network call.

Two sources, chosen by the `GEOIP_DATABASE` setting:

- empty (the default): geoip2fast's own data file, bundled with the package (MaxMind GeoLite2 Country, IPv4 and
  IPv6): the country only (Postmark's `CountryISOCode` and `Country`);
- a path to an `.mmdb` file (MaxMind GeoLite2/GeoIP2 City, or DB-IP's IP to City Lite, which share the format),
  read with `maxminddb`: country, region, city and coordinates as well.

A reader is opened once per process and path (opening the bundled file takes about half a second, done off the
event loop by `load`); a lookup is microseconds. A private, loopback or unknown address has no Geo.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

BUNDLED_FILE = "geoip2fast-ipv6.dat.gz"
SOURCE_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")


@dataclass(frozen=True, slots=True)
class Geo:
    """Postmark's `Geo` fields (empty strings where the database does not say)."""

    country_iso: str = ""
    country: str = ""
    region_iso: str = ""
    region: str = ""
    city: str = ""
    coords: str = ""


NOWHERE = Geo()


@dataclass(frozen=True, slots=True)
class Info:
    """What `/health/details` shows of the database in use."""

    source: str
    description: str
    built: date | None

    def wire(self) -> dict[str, str]:
        return {"Source": self.source, "Description": self.description, "Date": self.built.isoformat() if self.built else ""}


class Locator(Protocol):
    info: Info

    def locate(self, ip: str) -> Geo: ...


def _public(ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(ip.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address) if address.is_global else None


class BundledLocator:
    """geoip2fast's own data file: country only."""

    def __init__(self) -> None:
        with warnings.catch_warnings():
            # Its source has regular expressions in plain strings ("\."): compiled without a .pyc, Python warns.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            from geoip2fast import GeoIP2Fast  # type: ignore[import-untyped]  # imported here: loading its data is the slow part

        self._db = GeoIP2Fast(geoip2fast_data_file=BUNDLED_FILE, verbose=False)
        about = self._db.get_database_info()
        source = str(about.get("source_info", ""))
        found = SOURCE_DATE.search(source)
        built = date(int(found[1]), int(found[2]), int(found[3])) if found else None
        self.info = Info(source="geoip2fast (bundled)", description=f"{source}: {about.get('database_content', '')}", built=built)

    def locate(self, ip: str) -> Geo:
        address = _public(ip)
        if address is None:
            return NOWHERE
        found = self._db.lookup(address)
        code = str(getattr(found, "country_code", "") or "")
        if len(code) != 2 or not code.isalpha():  # "--" and error codes for ranges it does not know
            return NOWHERE
        return Geo(country_iso=code, country=str(getattr(found, "country_name", "") or ""))


def _name(record: dict[str, Any], key: str) -> str:
    names = (record.get(key) or {}).get("names") or {}
    return str(names.get("en", ""))


class MmdbLocator:
    """A MaxMind-format City (or Country) database given by `GEOIP_DATABASE`."""

    def __init__(self, path: str) -> None:
        import maxminddb

        self._db = maxminddb.open_database(path)
        meta = self._db.metadata()
        built = datetime.fromtimestamp(meta.build_epoch, UTC).date()
        self.info = Info(source=Path(path).name, description=str(meta.database_type), built=built)

    def locate(self, ip: str) -> Geo:
        address = _public(ip)
        if address is None:
            return NOWHERE
        try:
            found = self._db.get(address)
        except ValueError:
            return NOWHERE
        if not isinstance(found, dict):
            return NOWHERE
        record: dict[str, Any] = dict(found)
        country = record.get("country") or {}
        subdivisions = record.get("subdivisions") or [{}]
        location = record.get("location") or {}
        coords = ""
        if "latitude" in location and "longitude" in location:
            coords = f"{location['latitude']},{location['longitude']}"
        return Geo(
            country_iso=str(country.get("iso_code", ""))[:2],
            country=_name(record, "country"),
            region_iso=str(subdivisions[0].get("iso_code", ""))[:10],
            region=str((subdivisions[0].get("names") or {}).get("en", "")),
            city=_name(record, "city"),
            coords=coords[:40],
        )


@functools.cache
def locator(path: str) -> Locator:
    """The reader for `path` ("" for the bundled file), opened once per process."""
    return MmdbLocator(path) if path else BundledLocator()


async def load(path: str) -> Locator:
    """Open the reader off the event loop (start-up)."""
    return await asyncio.to_thread(locator, path)
