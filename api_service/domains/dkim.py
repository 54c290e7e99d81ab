"""DKIM keys (RSA-2048, made when a domain is added) and signing with dkimpy: pure functions."""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api_service.mail.parse import header_fields, split_head

SIGNED_HEADERS = [b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"mime-version", b"content-type"]
# Signed when the message has them: RFC 8058 §4 asks one-click unsubscribe to be covered by the signature
# (Gmail and Yahoo show the button only then); List-Id and Feedback-ID are what receivers group and report by.
SIGNED_WHEN_PRESENT = [b"list-unsubscribe", b"list-unsubscribe-post", b"list-id", b"feedback-id"]
# Listed once more than they occur (RFC 6376 §5.4.2, "over-signing"): a copy added on the way (a second
# Subject or From that a reader may show instead) breaks the signature.
OVER_SIGNED = [b"from", b"subject", b"to", b"date"]


@dataclass(frozen=True, slots=True)
class DkimKey:
    selector: str
    private_pem: str
    public_b64: str


def new_selector(day: str, *, taken: Collection[str] = ()) -> str:
    """`pg<YYYYMMDD>`, or `pg<YYYYMMDD>-2`, `-3` … when a key of the domain already uses it: a new
    key published under the old key's selector would replace that record before the new key signs."""
    selector, n = f"pg{day}", 1
    while selector in taken:
        n += 1
        selector = f"pg{day}-{n}"
    return selector


def generate_key(*, taken: Collection[str] = ()) -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public_der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    selector = new_selector(datetime.now(UTC).strftime("%Y%m%d"), taken=taken)
    return DkimKey(selector=selector, private_pem=private_pem, public_b64=base64.b64encode(public_der).decode())


def signed_headers(raw: bytes) -> list[bytes]:
    """The `h=` list for `raw`: the fixed set, the optional ones it has, then the over-signed ones again."""
    head, _ = split_head(raw)
    present = {item.split(b":", 1)[0].strip().lower() for item in header_fields(head) if b":" in item}
    return [*SIGNED_HEADERS, *(name for name in SIGNED_WHEN_PRESENT if name in present), *OVER_SIGNED]


def sign(raw: bytes, *, domain: str, selector: str, private_pem: str) -> bytes:
    """The message with a DKIM-Signature header in front (relaxed/relaxed, rsa-sha256)."""
    signature = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        private_pem.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=signed_headers(raw),
    )
    return bytes(signature) + raw


def published_key(records: list[str]) -> str:
    """The p= value of the first DKIM key record among a name's TXT records ("" when none)."""
    for record in records:
        fields = dict(part.strip().split("=", 1) for part in record.split(";") if "=" in part)
        if "p" in fields:
            return "".join(fields["p"].split())
    return ""
