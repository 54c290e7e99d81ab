"""WebAuthn passkeys and security keys as a console user's second factor (`webauthn`).

The relying party is the console's own origin: PUBLIC_URL when set, else the address the browser
used. Each ceremony's challenge is kept on the session row and used once; a credential's sign
count must grow (when the authenticator keeps one), so a cloned key is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url, generate_challenge
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from api_service.console import repository
from api_service.console.access import Identity
from api_service.console.events import audit_event
from api_service.console.service import ConsoleUserError
from api_service.models import ConsolePasskey

RP_NAME = "Postgate"
MAX_PASSKEYS = 10


@dataclass(frozen=True, slots=True)
class RelyingParty:
    id: str
    origin: str

    @classmethod
    def of(cls, origin: str) -> RelyingParty:
        parts = urlsplit(origin)
        return cls(id=parts.hostname or "localhost", origin=f"{parts.scheme}://{parts.netloc}")


async def _keep_challenge(*, session: AsyncSession, identity: Identity, challenge: bytes) -> None:
    await repository.set_session_state(
        session=session,
        token_sha256=identity.session_digest,
        pending=identity.pending.value if identity.pending else None,
        challenge=bytes_to_base64url(challenge),
    )


async def _take_challenge(*, session: AsyncSession, identity: Identity) -> bytes:
    row = await repository.get_live_session(session=session, token_sha256=identity.session_digest, now=datetime.now(UTC))
    if row is None or not row.challenge:
        raise ConsoleUserError("The passkey request expired; try again.")

    challenge = base64url_to_bytes(row.challenge)
    await repository.set_session_state(session=session, token_sha256=row.token_sha256, pending=row.pending, challenge=None)
    return challenge


async def registration_options(*, session: AsyncSession, identity: Identity, rp: RelyingParty) -> str:
    """The options for `navigator.credentials.create()`, as JSON."""
    existing = await repository.passkeys(session=session, username=identity.username)
    if len(existing) >= MAX_PASSKEYS:
        raise ConsoleUserError(f"A user has at most {MAX_PASSKEYS} passkeys; remove one first.")
    challenge = generate_challenge()
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=RP_NAME,
        user_name=identity.username,
        user_id=identity.username.encode(),
        challenge=challenge,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.DISCOURAGED, user_verification=UserVerificationRequirement.PREFERRED
        ),
        exclude_credentials=[PublicKeyCredentialDescriptor(id=_id_bytes(p.credential_id)) for p in existing],
    )
    await _keep_challenge(session=session, identity=identity, challenge=challenge)
    return options_to_json(options)


def _id_bytes(credential_id: str) -> bytes:

    return base64url_to_bytes(credential_id)


async def register(
    *,
    session: AsyncSession,
    identity: Identity,
    rp: RelyingParty,
    credential: str | dict[str, Any],
    name: str,
    client_ip: str | None = None,
) -> ConsolePasskey:
    """Check the authenticator's answer to the registration options and keep its public key."""
    challenge = await _take_challenge(session=session, identity=identity)
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=challenge, expected_rp_id=rp.id, expected_origin=rp.origin
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as exc:
        raise ConsoleUserError(f"The passkey could not be registered: {exc}") from exc
    credential_id = bytes_to_base64url(verified.credential_id)
    if await repository.get_passkey(session=session, credential_id=credential_id) is not None:
        raise ConsoleUserError("This passkey is registered already.")
    row = ConsolePasskey(
        credential_id=credential_id,
        username=identity.username,
        name=(name.strip() or "Passkey")[:64],
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
        created_at=datetime.now(UTC),
    )
    await repository.add_passkey(session=session, row=row)
    await audit_event(
        session=session,
        actor=identity.username,
        action="two_factor.passkey_added",
        target=identity.username,
        client_ip=client_ip,
        details={"name": row.name},
    )
    return row


async def authentication_options(*, session: AsyncSession, identity: Identity, rp: RelyingParty) -> str:
    """The options for `navigator.credentials.get()` with the user's passkeys, as JSON."""
    existing = await repository.passkeys(session=session, username=identity.username)
    if not existing:
        raise ConsoleUserError("You have no passkey.")
    challenge = generate_challenge()
    options = generate_authentication_options(
        rp_id=rp.id,
        challenge=challenge,
        allow_credentials=[PublicKeyCredentialDescriptor(id=_id_bytes(p.credential_id)) for p in existing],
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    await _keep_challenge(session=session, identity=identity, challenge=challenge)
    return options_to_json(options)


async def authenticate(*, session: AsyncSession, identity: Identity, rp: RelyingParty, credential: dict[str, Any]) -> bool:
    """Check an assertion made with one of the user's passkeys; True when it passes."""
    challenge = await _take_challenge(session=session, identity=identity)
    raw_id = credential.get("id")
    row = await repository.get_passkey(session=session, credential_id=raw_id) if isinstance(raw_id, str) and len(raw_id) <= 512 else None
    if row is None or row.username != identity.username:
        return False
    try:
        verified = verify_authentication_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=row.public_key,
            credential_current_sign_count=row.sign_count,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError):
        return False
    row.sign_count, row.last_used_at = verified.new_sign_count, datetime.now(UTC)
    await session.flush()
    return True


async def remove(*, session: AsyncSession, identity: Identity, credential_id: str, client_ip: str | None = None) -> None:
    await repository.delete_passkey(session=session, username=identity.username, credential_id=credential_id)
    await audit_event(
        session=session, actor=identity.username, action="two_factor.passkey_removed", target=identity.username, client_ip=client_ip
    )
