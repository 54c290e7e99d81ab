"""Report samples of the tests' own making: an RFC 7489 aggregate report, an RFC 6591 auth-failure
report and an RFC 8460 TLS report, built from parameters, and the mail that carries each."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from xml.sax.saxutils import escape


@dataclass
class Row:
    ip: str
    count: int
    header_from: str = "example.org"
    dkim: str = "pass"  # policy_evaluated
    spf: str = "fail"
    disposition: str = "none"
    auth_dkim: list[tuple[str, str, str]] = field(default_factory=lambda: [("example.org", "pg1", "pass")])
    auth_spf: list[tuple[str, str]] = field(default_factory=lambda: [("bounces.postgate.example", "pass")])


def aggregate_xml(
    rows: list[Row],
    *,
    org: str = "Receiver Inc.",
    report_id: str = "r-1",
    domain: str = "example.org",
    begin: int = 1733011200,
    namespace: str = "",
) -> bytes:
    ns = f' xmlns="{namespace}"' if namespace else ""
    records = "".join(
        f"""<record><row><source_ip>{r.ip}</source_ip><count>{r.count}</count>
<policy_evaluated><disposition>{r.disposition}</disposition><dkim>{r.dkim}</dkim><spf>{r.spf}</spf></policy_evaluated></row>
<identifiers><header_from>{escape(r.header_from)}</header_from></identifiers><auth_results>"""
        + "".join(
            f"<dkim><domain>{escape(d)}</domain><selector>{escape(s)}</selector><result>{res}</result></dkim>" for d, s, res in r.auth_dkim
        )
        + "".join(f"<spf><domain>{escape(d)}</domain><scope>mfrom</scope><result>{res}</result></spf>" for d, res in r.auth_spf)
        + "</auth_results></record>"
        for r in rows
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feedback{ns}><version>1.0</version>
<report_metadata><org_name>{escape(org)}</org_name><email>noreply-dmarc@receiver.example</email>
<report_id>{escape(report_id)}</report_id><date_range><begin>{begin}</begin><end>{begin + 86399}</end></date_range></report_metadata>
<policy_published><domain>{escape(domain)}</domain><adkim>r</adkim><aspf>r</aspf><p>none</p><sp>none</sp><pct>100</pct></policy_published>
{records}</feedback>""".encode()


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data)


def zipped(data: bytes, name: str = "report.xml") -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return out.getvalue()


def report_mail(
    attachment: bytes,
    *,
    content_type: str = "application/gzip",
    filename: str = "receiver.example!example.org!1!2.xml.gz",
    to: str = "dmarc@in.postgate.example",
) -> bytes:
    message = EmailMessage()
    message["From"] = "noreply-dmarc@receiver.example"
    message["To"] = to
    message["Subject"] = "Report Domain: example.org Submitter: receiver.example Report-ID: r-1"
    message.set_content("This is an aggregate report.")
    maintype, subtype = content_type.split("/")
    message.add_attachment(attachment, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes(policy=SMTP)


def failure_mail(*, domain: str = "example.org", source_ip: str = "203.0.113.9", to: str = "dmarc@in.postgate.example") -> bytes:
    boundary = "rpt-boundary"
    return (
        f"From: dmarc-failures@receiver.example\r\nTo: {to}\r\nSubject: FW: Spoof\r\nMessage-ID: <fail-1@receiver.example>\r\n"
        f'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nA message claiming to be from you failed DMARC.\r\n"
        f"--{boundary}\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: auth-failure\r\nUser-Agent: Receiver/1.0\r\nVersion: 1\r\nOriginal-Mail-From: <bounce@spoofer.example>\r\n"
        f"Arrival-Date: Tue, 03 Dec 2024 10:00:00 +0000\r\nSource-IP: {source_ip}\r\nReported-Domain: {domain}\r\nAuth-Failure: dmarc\r\n"
        f"Identity-Alignment: none\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: Billing <billing@{domain}>\r\nSubject: Your invoice\r\n\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def tls_json(
    *, domain: str = "example.org", report_id: str = "tls-1", successes: int = 90, failures: int = 3, day: date | None = None
) -> bytes:
    day = day or (datetime.now(UTC) - timedelta(days=1)).date()
    return json.dumps(
        {
            "organization-name": "Receiver Inc.",
            "date-range": {"start-datetime": f"{day}T00:00:00Z", "end-datetime": f"{day}T23:59:59Z"},
            "contact-info": "tls-reports@receiver.example",
            "report-id": report_id,
            "policies": [
                {
                    "policy": {
                        "policy-type": "sts",
                        "policy-string": ["version: STSv1", "mode: enforce"],
                        "policy-domain": domain,
                        "mx-host": [f"mx.{domain}"],
                    },
                    "summary": {"total-successful-session-count": successes, "total-failure-session-count": failures},
                    "failure-details": [
                        {
                            "result-type": "certificate-expired",
                            "sending-mta-ip": "198.51.100.4",
                            "receiving-mx-hostname": f"mx.{domain}",
                            "failed-session-count": failures,
                        }
                    ],
                }
            ],
        }
    ).encode()
