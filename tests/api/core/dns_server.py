"""A DNS server of the tests' own on loopback (dnslib over UDP), answering from a dict.

Unknown names get NXDOMAIN, known names without a record of the asked type an empty NOERROR
answer, names marked `fail` SERVFAIL; answers about names marked `secure` carry the AD bit, as a
validating resolver's do (DANE). Every question is logged in `queries`.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv6Address, ip_address
from typing import Any

from dnslib import AAAA, CNAME, MX, PTR, QTYPE, RCODE, RR, TLSA, TXT, A
from dnslib.server import BaseResolver, DNSLogger, DNSServer


@dataclass
class Zone(BaseResolver):  # type: ignore[misc]
    records: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    failing: set[str] = field(default_factory=set)
    secure: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def mx(self, domain: str, *exchanges: tuple[int, str]) -> None:
        for preference, host in exchanges:
            self._add(domain, QTYPE.MX, MX(host, preference))

    def null_mx(self, domain: str) -> None:
        self._add(domain, QTYPE.MX, MX(".", 0))

    def a(self, name: str, *ips: str) -> None:
        for ip in ips:
            self._add(name, QTYPE.A, A(ip))

    def aaaa(self, name: str, *ips: str) -> None:
        for ip in ips:
            self._add(name, QTYPE.AAAA, AAAA(list(IPv6Address(ip).packed)))

    def txt(self, name: str, *texts: str) -> None:
        for text in texts:
            # One string per 255 bytes, as a DNS provider splits a long DKIM key.
            self._add(name, QTYPE.TXT, TXT([text[i : i + 255] for i in range(0, len(text), 255)]))

    def ptr(self, ip: str, *names: str) -> None:
        """Reverse DNS of an address (in-addr.arpa / ip6.arpa)."""
        for name in names:
            self._add(ip_address(ip).reverse_pointer, QTYPE.PTR, PTR(name))

    def cname(self, name: str, target: str) -> None:
        self._add(name, QTYPE.CNAME, CNAME(target))

    def exists(self, name: str) -> None:
        """The name exists, with neither MX nor address."""
        self._add(name, QTYPE.TXT, TXT("v=spf1 -all"))

    def tlsa(self, name: str, usage: int, selector: int, mtype: int, data: bytes, *, secure: bool = True) -> None:
        self._add(name, QTYPE.TLSA, TLSA(usage, selector, mtype, data))
        if secure:
            self.secure.add(name.lower())

    def fail(self, name: str) -> None:
        self.failing.add(name.lower())

    def _add(self, name: str, rtype: int, rdata: Any) -> None:
        with self.lock:
            self.records[name.lower()].append(RR(name, rtype, rdata=rdata, ttl=60))

    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        with self.lock:
            self.queries.append((name, QTYPE[request.q.qtype]))
            if name in self.failing:
                reply.header.rcode = RCODE.SERVFAIL
            elif name not in self.records:
                reply.header.rcode = RCODE.NXDOMAIN
            else:
                reply.header.ad = int(name in self.secure)
                for record in self.records[name]:
                    if record.rtype == request.q.qtype:
                        reply.add_answer(record)
        return reply


@contextmanager
def dns_server() -> Iterator[tuple[Zone, str]]:
    """A running server and its `host:port`, for DNS_RESOLVER."""
    zone = Zone()
    server = DNSServer(zone, address="127.0.0.1", port=0, logger=DNSLogger(logf=lambda *_: None))
    thread = threading.Thread(target=server.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield zone, f"127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.server.shutdown()
        server.server.server_close()
        thread.join()
