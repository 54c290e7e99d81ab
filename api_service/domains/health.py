"""Sender health: the checks a deliverability engineer runs on a sending domain and on each IP
mail leaves from, each with a verdict (pass / warn / fail), why, and the fix — the exact record
to publish where a record fixes it.

Domain: DKIM key published; SPF of the domain and of the envelope (return-path) domain passes for
every SOURCE_IPS address; DMARC published with an enforcing policy; SPF and DKIM aligned with the
From domain; DMARC reports requested; hard bounces and spam complaints of the last 7 days against
Gmail's lines. IP: PTR confirmed forward, the HELO name matching it, and the DNS blocklists.

The DNS parts are async over `DnsLookup`; the verdicts are pure functions of what was found.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any

import dns.reversename

from api_service.domains import spf, spf_check
from api_service.domains.dkim import published_key
from api_service.domains.dns import DnsLookup
from shared.constants import HealthStatus

PASS, WARN, FAIL = HealthStatus.PASS, HealthStatus.WARN, HealthStatus.FAIL

# Gmail's sender guidelines: keep the spam rate reported in Postmaster Tools below 0.1 % and never
# reach 0.3 %. Bounces have no published line; 2 % and 5 % hard bounces are where mailbox providers
# start and clearly are throttling, in the common reading of deliverability teams.
COMPLAINT_WARN, COMPLAINT_FAIL = 0.001, 0.003
BOUNCE_WARN, BOUNCE_FAIL = 0.02, 0.05
RATE_DAYS = 7


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: HealthStatus
    why: str
    fix: str = ""
    host: str = ""
    type: str = ""
    record: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Check:
        """A check as stored (`to_json`)."""
        return cls(
            name=str(data.get("Name", "")),
            status=HealthStatus(data.get("Status", HealthStatus.WARN)),
            why=str(data.get("Why", "")),
            fix=str(data.get("Fix", "")),
            host=str(data.get("Host", "")),
            type=str(data.get("Type", "")),
            record=str(data.get("Record", "")),
        )

    def to_json(self) -> dict[str, str]:
        return {
            "Name": self.name,
            "Status": self.status.value,
            "Why": self.why,
            "Fix": self.fix,
            "Host": self.host,
            "Type": self.type,
            "Record": self.record,
        }


def worst(statuses: list[HealthStatus]) -> HealthStatus:
    return FAIL if FAIL in statuses else WARN if WARN in statuses else PASS


@dataclass(frozen=True, slots=True)
class HealthConfig:
    """What the checks compare against, from the settings."""

    source_ips: list[str]
    spf_text_value: str
    return_path_domain: str  # RETURN_PATH_DOMAIN, the envelope domain of unaligned mail
    dmarc_report_address: str
    helo_name: str
    dnsbl_zones: list[str]
    relay: str  # OUTBOUND_RELAY: "mx" for direct delivery


@dataclass(frozen=True, slots=True)
class DomainFacts:
    """What the checks need to know of a domain row."""

    name: str
    dkim_host: str
    dkim_value: str
    dkim_public_key: str
    return_path_domain: str
    return_path_verified: bool


@dataclass(frozen=True, slots=True)
class Rates:
    sent: int
    bounced: int
    complained: int


@dataclass(frozen=True, slots=True)
class DomainReport:
    checks: list[Check]
    report_addresses: list[str] | None = field(default_factory=list)  # None: DNS failed, keep the known ones


# --- DMARC records (pure) -------------------------------------------------------------------------


def dmarc_tags(record: str) -> dict[str, str]:
    """The tags of a DMARC record, names lower-cased (`v=DMARC1; p=none` → {"v": "DMARC1", "p": "none"})."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, eq, value = part.partition("=")
        if eq and name.strip():
            tags.setdefault(name.strip().lower(), value.strip())
    return tags


def dmarc_records(records: list[str]) -> list[str]:
    return [r for r in records if r.strip().lower().replace(" ", "").startswith("v=dmarc1")]


def mailto_addresses(value: str) -> list[str]:
    """The addresses of a `rua`/`ruf` list (`mailto:a@b!10m,mailto:c@d` → [a@b, c@d]), lower-cased."""
    found = []
    for item in value.split(","):
        item = item.strip()
        if item.lower().startswith("mailto:"):
            address = item[7:].split("!", 1)[0].strip().lower()
            if "@" in address:
                found.append(address)
    return found


def with_tag(record: str, name: str, value: str) -> str:
    """The record with tag `name` set to `value` (replaced, or added at the end)."""
    parts = [p.strip() for p in record.split(";") if p.strip()]
    for i, part in enumerate(parts):
        if part.partition("=")[0].strip().lower() == name:
            parts[i] = f"{name}={value}"
            break
    else:
        parts.append(f"{name}={value}")
    return "; ".join(parts)


def aligned(envelope_domain: str, from_domain: str, *, strict: bool) -> bool:
    """Identifier alignment (RFC 7489 §3.1): the same name, or (relaxed) one a subdomain of the other.
    Without the public suffix list the organizational domain is taken as the From domain itself,
    which is exact for the return paths Postgate uses (the domain or a subdomain of it)."""
    a, b = envelope_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if strict:
        return a == b
    return a == b or a.endswith("." + b) or b.endswith("." + a)


def dmarc_checks(*, domain: str, found_at: str, records: list[str], config: HealthConfig, envelope_domain: str) -> list[Check]:
    """The DMARC policy, alignment and reports checks from the `_dmarc` TXT records found (at the
    domain, or at a parent whose policy covers it)."""
    host = f"_dmarc.{domain}"
    starter = f"v=DMARC1; p=none; rua=mailto:{config.dmarc_report_address}"
    dmarc = dmarc_records(records)
    if not dmarc:
        return [
            Check(
                "dmarc",
                FAIL,
                f"No DMARC record at {host}: Gmail and Yahoo refuse or junk bulk mail without one (February 2024 rules).",
                fix="Publish this TXT record; once the reports show all your mail passes, raise p to quarantine, then reject.",
                host=host,
                type="TXT",
                record=starter,
            )
        ]
    if len(dmarc) > 1:
        return [
            Check(
                "dmarc",
                FAIL,
                f"{len(dmarc)} DMARC records at _dmarc.{found_at}: receivers ignore them all (RFC 7489 §6.6.3).",
                fix="Keep exactly one.",
                host=f"_dmarc.{found_at}",
                type="TXT",
                record=dmarc[0],
            )
        ]
    record = dmarc[0]
    tags = dmarc_tags(record)
    policy = (tags["sp"] if found_at != domain and "sp" in tags else tags.get("p", "")).lower()
    where = f"_dmarc.{found_at}" + ("" if found_at == domain else f" (the policy of {found_at} covers {domain})")
    checks = [_policy_check(policy=policy, tags=tags, record=record, where=where, host=f"_dmarc.{found_at}")]
    checks.append(_alignment_check(domain=domain, tags=tags, record=record, host=f"_dmarc.{found_at}", envelope_domain=envelope_domain))
    checks.append(_reports_check(tags=tags, record=record, host=f"_dmarc.{found_at}", config=config))
    return checks


def _policy_check(*, policy: str, tags: dict[str, str], record: str, where: str, host: str) -> Check:
    if policy not in ("none", "quarantine", "reject"):
        return Check(
            "dmarc",
            FAIL,
            f"The DMARC record at {where} has no valid p= tag (found {policy!r}): receivers ignore it.",
            fix="Publish a record with p=none, quarantine or reject.",
            host=host,
            type="TXT",
            record=with_tag(record, "p", "none"),
        )
    pct = tags.get("pct", "100")
    if policy == "none":
        return Check(
            "dmarc",
            WARN,
            f"DMARC at {where} is p=none: enough for Gmail's bulk-sender rule, but spoofed mail is still delivered.",
            fix="When the DMARC reports show all your own mail passing, move to p=quarantine, later p=reject.",
            host=host,
            type="TXT",
            record=with_tag(record, "p", "quarantine"),
        )
    if pct.strip() != "100":
        return Check(
            "dmarc",
            WARN,
            f"DMARC at {where} is p={policy} for pct={pct} % of failing mail only.",
            fix="Raise pct to 100 (or drop the tag).",
            host=host,
            type="TXT",
            record=with_tag(record, "pct", "100"),
        )
    return Check("dmarc", PASS, f"DMARC at {where} is p={policy}.")


def _alignment_check(*, domain: str, tags: dict[str, str], record: str, host: str, envelope_domain: str) -> Check:
    adkim, aspf = tags.get("adkim", "r").lower(), tags.get("aspf", "r").lower()
    modes = f"adkim={adkim}, aspf={aspf}"
    # Postgate signs with d= the From domain itself, so DKIM aligns in both modes.
    if aligned(envelope_domain, domain, strict=aspf == "s"):
        return Check("dmarc_alignment", PASS, f"DKIM (d={domain}) and SPF ({envelope_domain}) both align with {domain} ({modes}).")
    if aligned(envelope_domain, domain, strict=False):
        return Check(
            "dmarc_alignment",
            WARN,
            f"aspf=s: the return path {envelope_domain} is a subdomain of {domain}, so SPF never aligns; DMARC rests on DKIM alone.",
            fix="Use relaxed SPF alignment (drop aspf=s).",
            host=host,
            type="TXT",
            record=with_tag(record, "aspf", "r"),
        )
    return Check(
        "dmarc_alignment",
        WARN,
        f"Mail leaves with the envelope domain {envelope_domain}, which does not align with {domain}: DMARC passes on DKIM alone ({modes}), "
        "and a forwarder that breaks the signature makes it fail.",
        fix=f"Set the domain's ReturnPathDomain (e.g. pm-bounces.{domain}), publish the CNAME below and verify it.",
        host=f"pm-bounces.{domain}",
        type="CNAME",
        record=envelope_domain,
    )


def _reports_check(*, tags: dict[str, str], record: str, host: str, config: HealthConfig) -> Check:
    rua = mailto_addresses(tags.get("rua", ""))
    if not rua:
        return Check(
            "dmarc_reports",
            WARN,
            "The DMARC record asks for no aggregate reports (no rua=): nobody sees who sends as this domain.",
            fix=f"Add rua=mailto:{config.dmarc_report_address}; Postgate shows the reports under the domain.",
            host=host,
            type="TXT",
            record=with_tag(record, "rua", f"mailto:{config.dmarc_report_address}"),
        )
    if config.dmarc_report_address.lower() not in rua:
        return Check(
            "dmarc_reports",
            PASS,
            f"Aggregate reports go to {', '.join(rua)} (not to Postgate, so they are not shown here).",
        )
    return Check("dmarc_reports", PASS, f"Aggregate reports go to {', '.join(rua)}, and Postgate shows them.")


def report_authorization_check(*, domain: str, report_domain: str, records: list[str]) -> Check:
    """RFC 7489 §7.1: a receiver mails reports to another domain only when that domain publishes
    `<domain>._report._dmarc.<report domain>` with `v=DMARC1`."""
    host = f"{domain}._report._dmarc.{report_domain}"
    if dmarc_records(records):
        return Check("dmarc_report_authorization", PASS, f"{report_domain} accepts reports for {domain} ({host}).")
    return Check(
        "dmarc_report_authorization",
        WARN,
        f"{report_domain} does not say it accepts reports for {domain}: receivers drop them (RFC 7489 §7.1).",
        fix=f"The operator of {report_domain} publishes this TXT record (or one at *._report._dmarc.{report_domain}).",
        host=host,
        type="TXT",
        record="v=DMARC1",
    )


# --- SPF -----------------------------------------------------------------------------------------------


def suggested_spf(record: str | None, *, missing: list[str], fallback: str) -> str:
    """The domain's record (or `fallback`) with an ip4:/ip6: term for each missing IP before its `all`."""
    base = (record or fallback).split()
    terms = [f"ip{ip_address(ip).version}:{ip}" for ip in missing]
    tail = [t for t in base[1:] if spf.is_all(t) or t.lower().startswith("redirect=")]
    head = [t for t in base[1:] if t not in tail and t.lower() not in {x.lower() for x in terms}]
    return " ".join([base[0] if base else spf.VERSION, *head, *terms, *tail])


async def spf_health(*, name: str, domain: str, config: HealthConfig, dns: DnsLookup, fixable: bool) -> Check:
    """Whether SPF for `domain` passes for every source IP. Without SOURCE_IPS, whether the record
    holds SPF_TEXT_VALUE's mechanisms (the operator's statement of where mail leaves from)."""
    if not config.source_ips:
        published = await dns.txt(domain)
        record = spf.spf_record(published)
        if spf.covers(published, config.spf_text_value):
            return Check(name, PASS, f"The SPF record of {domain} holds SPF_TEXT_VALUE ({config.spf_text_value}); SOURCE_IPS is not set.")
        return Check(
            name,
            FAIL if fixable else WARN,
            f"The SPF record of {domain} ({record or 'none'}) lacks mechanisms of {config.spf_text_value}.",
            fix="Publish this TXT record." if fixable else f"The operator of {domain} adds them.",
            host=domain,
            type="TXT",
            record=config.spf_text_value if record is None else suggested_spf(record, missing=[], fallback=config.spf_text_value),
        )
    outcomes = await asyncio.gather(*(spf_check.check_host(ip, domain, dns=dns) for ip in config.source_ips))
    record = outcomes[0].record
    failing = [(ip, o) for ip, o in zip(config.source_ips, outcomes, strict=True) if o.result != "pass"]
    if not failing:
        return Check(name, PASS, f"SPF of {domain} passes for {', '.join(config.source_ips)}.")
    why = "; ".join(f"{ip}: {o.result} ({o.why})" for ip, o in failing)
    return Check(
        name,
        FAIL,
        f"SPF of {domain} does not pass for every sending IP — {why}.",
        fix="Publish this TXT record (it replaces the current one)." if fixable else f"The operator of {domain} authorises these IPs.",
        host=domain,
        type="TXT",
        record=suggested_spf(record, missing=[ip for ip, _ in failing], fallback=config.spf_text_value),
    )


# --- the domain's checks ------------------------------------------------------------------------------


def dkim_check(*, facts: DomainFacts, published_key: str) -> Check:
    if facts.dkim_public_key and published_key == facts.dkim_public_key:
        return Check("dkim", PASS, f"The signing key is published at {facts.dkim_host}.")
    return Check(
        "dkim",
        FAIL,
        f"The signing key is not published at {facts.dkim_host}" + (" (a different key is)." if published_key else "."),
        fix="Publish this TXT record, then verify the domain's DKIM.",
        host=facts.dkim_host,
        type="TXT",
        record=facts.dkim_value,
    )


def rate_checks(rates: Rates) -> list[Check]:
    if rates.sent == 0:
        return [
            Check("bounce_rate", PASS, f"No mail sent in the last {RATE_DAYS} days."),
            Check("complaint_rate", PASS, f"No mail sent in the last {RATE_DAYS} days."),
        ]
    bounce, complaint = rates.bounced / rates.sent, rates.complained / rates.sent
    of = f"of {rates.sent} recipients in the last {RATE_DAYS} days"
    checks = []
    status = FAIL if bounce >= BOUNCE_FAIL else WARN if bounce >= BOUNCE_WARN else PASS
    checks.append(
        Check(
            "bounce_rate",
            status,
            f"{rates.bounced} hard bounces {of} ({bounce:.2%}; warn at {BOUNCE_WARN:.0%}, fail at {BOUNCE_FAIL:.0%}).",
            fix=""
            if status is PASS
            else "Confirm addresses before mailing them (double opt-in) and drop lists you did not collect yourself.",
        )
    )
    status = FAIL if complaint >= COMPLAINT_FAIL else WARN if complaint >= COMPLAINT_WARN else PASS
    checks.append(
        Check(
            "complaint_rate",
            status,
            f"{rates.complained} spam complaints {of} ({complaint:.2%}; Gmail asks for under {COMPLAINT_WARN:.1%} and never {COMPLAINT_FAIL:.1%}).",
            fix=""
            if status is PASS
            else "Send only what recipients asked for, make unsubscribing one click, and stop mailing those who never open.",
        )
    )
    return checks


class DnsUnavailable(Exception):
    """A look-up failed (SERVFAIL, timeout): the record's presence is unknown."""


async def find_dmarc(domain: str, *, dns: DnsLookup) -> tuple[str, list[str]]:
    """The DMARC records that apply to `domain`: its own, else the nearest parent's (the tree walk of
    DMARCbis, which needs no public suffix list); stops above the two last labels. Raises
    DnsUnavailable when a look-up failed rather than found nothing."""
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        name = ".".join(labels[start:])
        answer = await dns.query(f"_dmarc.{name}", "TXT")
        if answer.failed:
            raise DnsUnavailable(f"_dmarc.{name}")
        records = dmarc_records(answer.records)
        if records:
            return name, records
    return domain, []


async def _dmarc_or_unknown(domain: str, *, dns: DnsLookup) -> tuple[str, list[str]] | str:
    try:
        return await find_dmarc(domain, dns=dns)
    except DnsUnavailable as exc:
        return str(exc)


async def check_domain(*, facts: DomainFacts, config: HealthConfig, rates: Rates, dns: DnsLookup) -> DomainReport:
    """Every check of one domain, and the report addresses its DMARC and TLS-RPT records name."""
    envelope = facts.return_path_domain if facts.return_path_domain and facts.return_path_verified else config.return_path_domain
    found, dkim_records, tls_records = await asyncio.gather(
        _dmarc_or_unknown(facts.name, dns=dns), dns.txt(facts.dkim_host), dns.txt(f"_smtp._tls.{facts.name}")
    )
    spf_own, spf_envelope = await asyncio.gather(
        spf_health(name="spf", domain=facts.name, config=config, dns=dns, fixable=True),
        spf_health(name="spf_envelope", domain=envelope, config=config, dns=dns, fixable=envelope != config.return_path_domain),
    )
    checks = [dkim_check(facts=facts, published_key=published_key(dkim_records)), spf_own, spf_envelope]
    dmarc: list[str] = []
    found_at = facts.name
    if isinstance(found, str):  # a DNS failure is not a missing record: no alarm until DNS answers
        checks.append(
            Check("dmarc", WARN, f"{found} could not be looked up (SERVFAIL or timeout); DMARC is unknown.", fix="Check again later.")
        )
    else:
        found_at, dmarc = found
        checks += dmarc_checks(domain=facts.name, found_at=found_at, records=dmarc, config=config, envelope_domain=envelope)
    addresses: list[str] = []
    if len(dmarc) == 1:
        tags = dmarc_tags(dmarc[0])
        addresses = mailto_addresses(tags.get("rua", "")) + mailto_addresses(tags.get("ruf", ""))
        external = sorted({a.rpartition("@")[2] for a in addresses} - {facts.name, found_at})
        for report_domain in external:
            if not (report_domain.endswith("." + facts.name) or report_domain.endswith("." + found_at)):
                records = await dns.txt(f"{facts.name}._report._dmarc.{report_domain}") or await dns.txt(
                    f"*._report._dmarc.{report_domain}"
                )
                checks.append(report_authorization_check(domain=facts.name, report_domain=report_domain, records=records))
    for record in tls_records:
        if record.strip().lower().startswith("v=tlsrptv1"):
            addresses += mailto_addresses(dmarc_tags(record).get("rua", ""))
    checks += rate_checks(rates)
    return DomainReport(checks=checks, report_addresses=None if isinstance(found, str) else sorted(set(addresses)))


# --- the source IPs' checks ----------------------------------------------------------------------------


def blocklist_name(ip: str, zone: str) -> str:
    """`192.0.2.1` in `zen.spamhaus.org` → `1.2.0.192.zen.spamhaus.org` (IPv6: nibbles)."""
    reverse = dns.reversename.from_address(ip).to_text(omit_final_dot=True)
    return reverse.rsplit(".", 2)[0] + "." + zone


def blocklist_check(*, ip: str, zone: str, answers: list[str], failed: bool) -> Check:
    name = f"dnsbl:{zone}"
    if failed:
        return Check(
            name, WARN, f"{zone} did not answer for {ip}; the listing is unknown.", fix="Check DNS_RESOLVER reaches the blocklist."
        )
    codes = [a for a in answers if a.startswith("127.")]
    refusals = [a for a in codes if a.startswith("127.255.255.")]
    if refusals:
        return Check(
            name,
            WARN,
            f"{zone} refused the query ({', '.join(refusals)}): it does not answer public or high-volume resolvers.",
            fix=f"Point DNS_RESOLVER at a resolver of your own (or register with {zone}'s operator) so the listing can be seen.",
        )
    if codes:
        return Check(
            name,
            FAIL,
            f"{ip} is listed on {zone} ({', '.join(codes)}): many receivers refuse mail from it.",
            fix=f"Find why on {zone}'s lookup page, fix the cause (a compromised account, a spam trap hit), then request delisting.",
        )
    return Check(name, PASS, f"{ip} is not listed on {zone}.")


async def check_ip(*, ip: str, config: HealthConfig, dns: DnsLookup) -> list[Check]:
    """PTR with forward confirmation, the HELO name, and each blocklist."""
    names = await dns.ptr(ip)
    confirmed = [n for n in names if ip_address(ip) in {ip_address(a) for a in await dns.addresses(n)}]
    reverse = dns_reverse(ip)
    helo = config.helo_name.lower().rstrip(".")
    checks = [ptr_check(ip=ip, names=names, confirmed=confirmed, reverse=reverse, helo=helo)]
    helo_addresses = await dns.addresses(helo) if helo else []
    checks.append(helo_check(ip=ip, helo=helo, confirmed=confirmed, helo_addresses=helo_addresses, reverse=reverse))
    answers = await asyncio.gather(*(dns.query(blocklist_name(ip, zone), "A") for zone in config.dnsbl_zones))
    checks += [
        blocklist_check(ip=ip, zone=zone, answers=a.records, failed=a.failed) for zone, a in zip(config.dnsbl_zones, answers, strict=True)
    ]
    return checks


def dns_reverse(ip: str) -> str:
    return dns.reversename.from_address(ip).to_text(omit_final_dot=True)


def ptr_check(*, ip: str, names: list[str], confirmed: list[str], reverse: str, helo: str) -> Check:
    wanted = helo or (names[0] if names else "mail.<your domain>")
    if not names:
        return Check(
            "ptr",
            FAIL,
            f"{ip} has no PTR record: Gmail refuses mail from addresses without reverse DNS.",
            fix=f"Ask the provider of {ip} to set its PTR to {wanted}, a name that resolves back to {ip}.",
            host=reverse,
            type="PTR",
            record=wanted,
        )
    if not confirmed:
        return Check(
            "ptr",
            FAIL,
            f"The PTR of {ip} ({', '.join(names)}) does not resolve back to {ip} (no forward confirmation).",
            fix=f"Publish an address record of {names[0]} pointing at {ip}.",
            host=names[0],
            type="AAAA" if ip_address(ip).version == 6 else "A",
            record=ip,
        )
    return Check("ptr", PASS, f"{ip} has the PTR {confirmed[0]}, which resolves back to it.")


def helo_check(*, ip: str, helo: str, confirmed: list[str], helo_addresses: list[str], reverse: str) -> Check:
    if not helo:
        return Check(
            "helo",
            WARN,
            "HELO_NAME is not set: the worker greets with the machine's name.",
            fix="Set HELO_NAME to the PTR name of the sending IP.",
        )
    if helo in confirmed:
        return Check("helo", PASS, f"The HELO name {helo} is the confirmed PTR of {ip}.")
    resolves = ip_address(ip) in {ip_address(a) for a in helo_addresses}
    if not resolves:
        return Check(
            "helo",
            FAIL,
            f"The HELO name {helo} does not resolve to {ip}.",
            fix=f"Publish an address record of {helo} pointing at {ip}, and have the PTR of {ip} name {helo}.",
            host=helo,
            type="AAAA" if ip_address(ip).version == 6 else "A",
            record=ip,
        )
    return Check(
        "helo",
        WARN,
        f"The HELO name {helo} resolves to {ip}, but the PTR of {ip} names {', '.join(confirmed) or 'nothing confirmed'}.",
        fix=f"Have the PTR of {ip} name {helo}.",
        host=reverse,
        type="PTR",
        record=helo,
    )


def no_source_ips_checks(config: HealthConfig) -> list[Check]:
    """What the IP section says when SOURCE_IPS is empty."""
    if config.relay.strip().lower() != "mx":
        return [
            Check("source_ips", PASS, "Mail goes out through OUTBOUND_RELAY: the relay's addresses, PTR and blocklists are its operator's.")
        ]
    return [
        Check(
            "source_ips",
            WARN,
            "SOURCE_IPS is empty: the addresses mail leaves from are unknown, so their PTR, HELO name and blocklists are not checked.",
            fix="Set SOURCE_IPS to the public IPs the worker delivers from.",
        )
    ]
