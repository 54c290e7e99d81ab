"""Two-factor sign-in: TOTP enrolment and codes (once each), recovery codes, the Owner's
requirement, and passkeys checked with a software authenticator (ES256, 'none' attestation)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any

import cbor2
import httpx
import pyotp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI

from api_service.console import service as console_service
from api_service.models import AccountRole
from tests.console.conftest import Console, csrf_of

pytestmark = pytest.mark.asyncio

PASSWORD = "correct horse battery"
SECRET = re.compile(r'id="totp-secret">([A-Z2-7]+)<')
CODES = re.compile(r"\b([a-z2-9]{5}-[a-z2-9]{5})\b")


def next_code(secret: str) -> str:
    """The code of the next time step (one step of drift is accepted): the current one was used at enrolment."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


async def new_user(app: FastAPI, name: str = "tara") -> httpx.AsyncClient:
    async with app.state.sessionmaker() as session, session.begin():
        await console_service.create_user(session=session, username=name, password=PASSWORD, role=AccountRole.ADMIN)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://postgate.test")


async def password_step(client: httpx.AsyncClient, name: str = "tara") -> httpx.Response:
    form = await client.get("/console/sign-in")
    data = {"csrf_token": csrf_of(form.text), "username": name, "password": PASSWORD, "next": "/console/servers"}
    return await client.post("/console/sign-in", data=data)


async def enrol_totp(client: httpx.AsyncClient) -> tuple[str, list[str]]:
    page = await client.get("/console/account/two-factor")
    found = SECRET.search(page.text)
    assert found, page.text
    secret = found.group(1)
    assert "<svg" in page.text  # the QR code, drawn by Postgate itself
    done = await client.post("/console/account/two-factor/totp", data={"csrf_token": csrf_of(page.text), "code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200, done.text
    codes = CODES.findall(done.text.split('id="recovery-codes"')[1].split("</pre>")[0])
    assert len(codes) == 10
    return secret, codes


async def sign_out(client: httpx.AsyncClient) -> None:
    page = await client.get("/console/account/two-factor")
    await client.post("/console/sign-out", data={"csrf_token": csrf_of(page.text)})


async def code_step(client: httpx.AsyncClient, code: str) -> httpx.Response:
    page = await client.get("/console/sign-in/second-factor")
    assert page.status_code == 200, page.text
    return await client.post(
        "/console/sign-in/second-factor", data={"csrf_token": csrf_of(page.text), "code": code, "next": "/console/servers"}
    )


class TestTotp:
    async def test_enrolment_then_sign_in_asks_the_code_after_the_password(self, app: FastAPI) -> None:
        client = await new_user(app)
        assert (await password_step(client)).status_code == 303
        secret, _ = await enrol_totp(client)
        await sign_out(client)
        first = await password_step(client)
        assert first.headers["location"].startswith("/console/sign-in/second-factor")
        assert (await client.get("/console/servers")).status_code == 303  # nothing before the code
        assert (await code_step(client, "000000" if pyotp.TOTP(secret).now() != "000000" else "111111")).status_code == 401
        half = client.cookies.get("postgate_console")
        ok = await code_step(client, next_code(secret))
        assert ok.status_code == 303
        assert (await client.get("/console/servers")).status_code == 200
        # The half-signed-in session was replaced, not promoted: its cookie opens nothing.
        stale = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://postgate.test")
        stale.cookies.set("postgate_console", half or "", path="/console")
        assert client.cookies.get("postgate_console") != half
        assert (await stale.get("/console/servers")).status_code == 303

    async def test_a_code_works_once(self, app: FastAPI) -> None:
        client = await new_user(app)
        await password_step(client)
        secret, _ = await enrol_totp(client)
        await sign_out(client)
        await password_step(client)
        # The enrolment's own code was the last accepted: its time step is refused now.
        assert (await code_step(client, pyotp.TOTP(secret).at(time.time() - 30))).status_code == 401
        assert (await code_step(client, next_code(secret))).status_code == 303
        await sign_out(client)
        await password_step(client)
        assert (await code_step(client, next_code(secret))).status_code == 401

    async def test_recovery_code_works_once(self, app: FastAPI) -> None:
        client = await new_user(app)
        await password_step(client)
        _, codes = await enrol_totp(client)
        await sign_out(client)
        await password_step(client)
        assert (await code_step(client, codes[0].upper())).status_code == 303
        await sign_out(client)
        await password_step(client)
        assert (await code_step(client, codes[0])).status_code == 401
        assert (await code_step(client, codes[1])).status_code == 303


class TestRequirement:
    async def test_owner_requires_2fa_and_users_without_it_enrol_first(self, app: FastAPI, console: Console) -> None:
        client = await new_user(app)
        assert (await password_step(client)).headers["location"] == "/console/servers"
        assert (await console.post("/console/users/policy", {"require_two_factor": "on"})).status_code == 303
        # The signed-in session is sent to enrolment at its next click, then works again.
        blocked = await client.get("/console/servers")
        assert blocked.status_code == 303
        assert "/console/account/two-factor" in blocked.headers["location"]
        await enrol_totp(client)
        assert (await client.get("/console/servers")).status_code == 200
        other = await new_user(app, "uma")
        assert (await password_step(other, "uma")).headers["location"] == "/console/account/two-factor"
        assert 'id="enrol-required"' in (await other.get("/console/account/two-factor")).text


@dataclass
class SoftAuthenticator:
    """A platform authenticator in software: one ES256 key, 'none' attestation."""

    rp_id: str = "postgate.test"
    origin: str = "http://postgate.test"
    key: ec.EllipticCurvePrivateKey = field(default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    credential_id: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    count: int = 0

    def client_data(self, kind: str, challenge: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": False}).encode()

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        numbers = self.key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        attested = bytes(16) + struct.pack(">H", len(self.credential_id)) + self.credential_id + cose
        auth_data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([0x45]) + struct.pack(">I", self.count) + attested
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self.client_data("webauthn.create", options["challenge"])
        response = {"clientDataJSON": b64(client_data), "attestationObject": b64(attestation)}
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key", "response": response}

    def get(self, options: dict[str, Any]) -> dict[str, Any]:
        self.count += 1
        auth_data = hashlib.sha256(self.rp_id.encode()).digest() + bytes([0x05]) + struct.pack(">I", self.count)
        client_data = self.client_data("webauthn.get", options["challenge"])
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        response = {
            "clientDataJSON": b64(client_data),
            "authenticatorData": b64(auth_data),
            "signature": b64(signature),
            "userHandle": None,
        }
        return {"id": b64(self.credential_id), "rawId": b64(self.credential_id), "type": "public-key", "response": response}


class TestPasskeys:
    async def test_registered_passkey_is_the_second_factor(self, app: FastAPI) -> None:
        client = await new_user(app)
        await password_step(client)
        page = await client.get("/console/account/two-factor")
        headers = {"X-CSRF-Token": csrf_of(page.text)}
        options = (await client.post("/console/account/two-factor/passkeys/options", headers=headers)).json()
        assert options["rp"]["id"] == "postgate.test"
        key = SoftAuthenticator()
        added = await client.post(
            "/console/account/two-factor/passkeys", headers=headers, json={"name": "Laptop", "credential": key.create(options)}
        )
        assert added.status_code == 200, added.text
        assert "Laptop" in (await client.get("/console/account/two-factor")).text
        await sign_out(client)

        assert "second-factor" in (await password_step(client)).headers["location"]
        page = await client.get("/console/sign-in/second-factor")
        headers = {"X-CSRF-Token": csrf_of(page.text)}
        options = (await client.post("/console/sign-in/second-factor/passkey/options", headers=headers)).json()
        wrong = SoftAuthenticator(credential_id=key.credential_id)  # same ID, another key
        refused = await client.post("/console/sign-in/second-factor/passkey", headers=headers, json={"credential": wrong.get(options)})
        assert refused.status_code == 401
        assert (await client.get("/console/servers")).status_code == 303
        options = (await client.post("/console/sign-in/second-factor/passkey/options", headers=headers)).json()
        passed = await client.post(
            "/console/sign-in/second-factor/passkey", headers=headers, json={"credential": key.get(options), "next": "/console/domains"}
        )
        assert passed.status_code == 200, passed.text
        assert passed.json()["next"] == "/console/domains"
        assert (await client.get("/console/servers")).status_code == 200

    async def test_options_need_the_sessions_csrf_token(self, app: FastAPI) -> None:
        client = await new_user(app)
        await password_step(client)
        assert (await client.post("/console/account/two-factor/passkeys/options")).status_code == 403


class TestTurningOff:
    async def test_turning_the_app_off_needs_a_current_code(self, app: FastAPI) -> None:
        client = await new_user(app)
        await password_step(client)
        _, codes = await enrol_totp(client)
        page = await client.get("/console/account/two-factor")
        wrong = await client.post("/console/account/two-factor/totp/disable", data={"csrf_token": csrf_of(page.text), "code": "123456"})
        assert wrong.status_code == 422
        done = await client.post("/console/account/two-factor/totp/disable", data={"csrf_token": csrf_of(page.text), "code": codes[0]})
        assert done.status_code == 303
        assert 'id="totp-qr"' in (await client.get("/console/account/two-factor")).text
