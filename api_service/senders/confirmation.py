"""The public page a confirmation link opens: `GET /confirm/sender/{token}` shows the address and a
button, and only its `POST` confirms, because mail scanners and link previews fetch every link in
a message (a GET that confirmed would let them confirm for the recipient).

No token header: the unguessable token in the path is the credential. The path is exempt from
the Postmark wire rules (see `core.wire`), and the page sends its own strict headers; the token
is never sent on as a Referer.
"""

from __future__ import annotations

import jinja2
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api_service.deps import Session, TransactionalRoute
from api_service.models import SenderSignature
from api_service.senders import service

router = APIRouter(route_class=TransactionalRoute, include_in_schema=False)

HEADERS = {
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "x-robots-tag": "noindex",
}

PAGE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Postgate</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:4rem auto;padding:0 1rem;color:#222}
button{font:inherit;padding:.5rem 1.25rem;border:0;border-radius:.3rem;background:#4b3fc6;color:#fff;cursor:pointer}</style>
</head><body><h1>{{ title }}</h1>
{% if state == "ask" %}
<p>Allow Postgate to send email as <strong>{{ signature.name }} &lt;{{ signature.email }}&gt;</strong>?</p>
{% if signature.confirmation_personal_note %}<p>Note from the requester: {{ signature.confirmation_personal_note }}</p>{% endif %}
<form method="post"><button type="submit">Confirm this sender</button></form>
<p>If you did not ask for this, close this page: nothing is sent from this address until it is confirmed.</p>
{% elif state == "done" %}
<p><strong>{{ signature.email }}</strong> is confirmed: mail can now be sent from it.</p>
{% else %}
<p>This confirmation link does not work any more: it was used already, it expired, or a newer one was sent.
Ask whoever added the address to send a new one.</p>
{% endif %}
</body></html>
"""
)


def page(state: str, signature: SenderSignature | None, *, status: int = 200) -> HTMLResponse:
    titles = {"ask": "Confirm a sender address", "done": "Sender confirmed", "invalid": "Link not valid"}
    body = PAGE.render(title=titles[state], state=state, signature=signature)
    return HTMLResponse(body, status_code=status, headers=HEADERS)


@router.get(service.CONFIRMATION_PATH + "{token}")
async def show(token: str, session: Session) -> HTMLResponse:
    """The address to confirm and a button; nothing changes."""
    try:
        signature = await service.signature_for_link(session=session, token=token)
    except service.InvalidConfirmationLink:
        return page("invalid", None, status=404)
    return page("ask", signature)


@router.post(service.CONFIRMATION_PATH + "{token}")
async def confirm(token: str, session: Session) -> HTMLResponse:
    """Confirm the signature; the link stops working."""
    try:
        signature = await service.confirm(session=session, token=token)
    except service.InvalidConfirmationLink:
        return page("invalid", None, status=404)
    return page("done", signature)
