"""The account's sender signatures: the list, add (confirmed at once or by mail), delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.rendering import PREFIX, render
from api_service.console.web import CheckedForm, Signed, field, notice_of, redirect
from api_service.core.paging import EntityId
from api_service.deps import AppSettings, Session, TransactionalRoute
from api_service.senders import service as senders_service
from shared.schemas.senders import SenderCreate

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)


async def senders_page(
    request: Request,
    session: AsyncSession,
    identity: access.Identity,
    *,
    error: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    _, rows = await senders_service.list_signatures(session=session, count=500, offset=0)
    return render(
        request,
        "senders.html",
        {
            "identity": identity,
            "section": "senders",
            "senders": rows,
            "error": error,
            "notice": notice_of(request),
            "values": values or {"email": "", "name": "", "reply_to": ""},
        },
        status=status,
    )


@router.get("/senders")
async def senders(request: Request, session: Session, identity: Signed) -> HTMLResponse:
    return await senders_page(request, session, identity)


@router.post("/senders")
async def add_sender(request: Request, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> Response:
    values = {"email": field(form, "email"), "name": field(form, "name"), "reply_to": field(form, "reply_to")}

    async def create() -> senders_service.SignatureView:
        data = SenderCreate(FromEmail=values["email"], Name=values["name"], ReplyToEmail=values["reply_to"] or None)
        return await senders_service.create_signature(session=session, data=data, settings=settings)

    async def refused(r: Refused) -> Response:
        return await senders_page(request, session, identity, error=r.message, status=422, values=values)

    return await submit(
        session=session,
        change=create,
        done=lambda added: redirect(f"{PREFIX}/senders", notice="sender-added" if added.signature.confirmed else "sender-mailed"),
        refused=refused,
    )


@router.post("/senders/{signature_id}/delete")
async def delete_sender(signature_id: EntityId, session: Session, form: CheckedForm) -> Response:
    await senders_service.delete_signature(session=session, signature_id=signature_id)
    return redirect(f"{PREFIX}/senders", notice="sender-deleted")
