"""DKIM keys (RSA-2048, made when a domain is added; an optional Ed25519 key, RFC 8463, beside it)
and signing with dkimpy: pure functions."""

from __future__ import annotations

import base64
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

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


RSA_PREFIX = "pg"
# Its own selectors: an Ed25519 record published under an RSA key's selector would replace it.
ED25519_PREFIX = "pge"


def new_selector(day: str, *, taken: Collection[str] = (), prefix: str = RSA_PREFIX) -> str:
    """`pg<YYYYMMDD>`, or `pg<YYYYMMDD>-2`, `-3` … when a key of the domain already uses it: a new
    key published under the old key's selector would replace that record before the new key signs."""
    selector, n = f"{prefix}{day}", 1
    while selector in taken:
        n += 1
        selector = f"{prefix}{day}-{n}"
    return selector


def generate_key(*, taken: Collection[str] = ()) -> DkimKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public_der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    selector = new_selector(datetime.now(UTC).strftime("%Y%m%d"), taken=taken)
    return DkimKey(selector=selector, private_pem=private_pem, public_b64=base64.b64encode(public_der).decode())


def generate_ed25519_key(*, taken: Collection[str] = ()) -> DkimKey:
    """An Ed25519 key: `private_pem` holds the base64 raw seed (what dkimpy signs with), `public_b64`
    the base64 raw public key (the record's p=, RFC 8463 §4.2)."""
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    selector = new_selector(datetime.now(UTC).strftime("%Y%m%d"), taken=taken, prefix=ED25519_PREFIX)
    return DkimKey(selector=selector, private_pem=base64.b64encode(seed).decode(), public_b64=base64.b64encode(public).decode())


def signed_headers(raw: bytes) -> list[bytes]:
    """The `h=` list for `raw`: the fixed set, the optional ones it has, then the over-signed ones again."""
    head, _ = split_head(raw)
    present = {item.split(b":", 1)[0].strip().lower() for item in header_fields(head) if b":" in item}
    return [*SIGNED_HEADERS, *(name for name in SIGNED_WHEN_PRESENT if name in present), *OVER_SIGNED]


def sign(raw: bytes, *, domain: str, selector: str, private_pem: str, ed25519_selector: str = "", ed25519_key: str = "") -> bytes:
    """The message with a DKIM-Signature header in front (relaxed/relaxed, rsa-sha256) and, given an
    Ed25519 key, a second one (ed25519-sha256) over the same headers: a receiver that knows Ed25519
    checks either, one that does not ignores it (RFC 8463 §1 asks for both during the transition)."""
    headers = signed_headers(raw)
    signature = bytes(
        dkim.sign(
            raw, selector.encode(), domain.encode(), private_pem.encode(), canonicalize=(b"relaxed", b"relaxed"), include_headers=headers
        )
    )
    if ed25519_selector and ed25519_key:
        signature += bytes(
            dkim.sign(
                raw,
                ed25519_selector.encode(),
                domain.encode(),
                ed25519_key.encode(),
                canonicalize=(b"relaxed", b"relaxed"),
                include_headers=headers,
                signature_algorithm=b"ed25519-sha256",
            )
        )
    return signature + raw


def published_key(records: list[str]) -> str:
    """The p= value of the first DKIM key record among a name's TXT records ("" when none)."""
    for record in records:
        fields = dict(part.strip().split("=", 1) for part in record.split(";") if "=" in part)
        if "p" in fields:
            return "".join(fields["p"].split())
    return ""
