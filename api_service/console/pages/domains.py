"""The account's domains: the list, add, a domain's DNS records, DKIM verification, delete."""

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
from api_service.domains import service as domains_service
from api_service.domains.dns import lookup_for
from api_service.domains.views import tracking_cname_value
from api_service.models import Domain
from shared.schemas.senders import DomainCreate

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)


async def domains_page(
    request: Request,
    session: AsyncSession,
    identity: access.Identity,
    *,
    error: str | None = None,
    status: int = 200,
    values: dict[str, str] | None = None,
) -> HTMLResponse:
    _, rows = await domains_service.list_domains(session=session, count=500, offset=0)
    return render(
        request,
        "domains.html",
        {
            "identity": identity,
            "section": "domains",
            "domains": rows,
            "error": error,
            "notice": notice_of(request),
            "values": values or {"name": "", "return_path": ""},
        },
        status=status,
    )


@router.get("/domains")
async def domains(request: Request, session: Session, identity: Signed) -> HTMLResponse:
    return await domains_page(request, session, identity)


@router.post("/domains")
async def add_domain(request: Request, session: Session, settings: AppSettings, identity: Signed, form: CheckedForm) -> Response:
    values = {"name": field(form, "name"), "return_path": field(form, "return_path")}

    async def create() -> Domain:
        data = DomainCreate(Name=values["name"], ReturnPathDomain=values["return_path"] or None)
        return await domains_service.create_domain(session=session, data=data, auto_confirm=settings.sender_auto_confirm)

    async def refused(r: Refused) -> Response:
        return await domains_page(request, session, identity, error=r.message, status=422, values=values)

    return await submit(session=session, change=create, done=lambda domain: redirect(f"{PREFIX}/domains/{domain.id}"), refused=refused)


@router.get("/domains/{domain_id}")
async def domain(request: Request, domain_id: EntityId, session: Session, settings: AppSettings, identity: Signed) -> HTMLResponse:
    row = await domains_service.get_domain_or_raise(session=session, domain_id=domain_id)
    records = [
        ("DKIM", "TXT", f"{row.dkim_selector}._domainkey.{row.name}", f"k=rsa;p={row.dkim_public_key}", row.dkim_verified),
        ("SPF", "TXT", row.name, settings.spf_text_value, row.spf_verified),
    ]
    if row.dkim_pending_selector:  # a rotated key: publish it beside the current one, which signs until it is seen
        records.insert(
            1,
            (
                "DKIM (new key)",
                "TXT",
                f"{row.dkim_pending_selector}._domainkey.{row.name}",
                f"k=rsa;p={row.dkim_pending_public_key}",
                False,
            ),
        )
    if row.dkim_ed25519_selector:
        records.append(
            (
                "DKIM (Ed25519)",
                "TXT",
                f"{row.dkim_ed25519_selector}._domainkey.{row.name}",
                f"k=ed25519;p={row.dkim_ed25519_public_key}",
                row.dkim_ed25519_verified,
            )
        )
    if row.dkim_ed25519_pending_selector:
        records.append(
            (
                "DKIM (Ed25519, new key)",
                "TXT",
                f"{row.dkim_ed25519_pending_selector}._domainkey.{row.name}",
                f"k=ed25519;p={row.dkim_ed25519_pending_public_key}",
                False,
            )
        )
    if row.return_path_domain:
        records.append(("Return path", "CNAME", row.return_path_domain, settings.return_path_domain, row.return_path_verified))
    if row.tracking_domain:
        records.append(("Tracking", "CNAME", row.tracking_domain, tracking_cname_value(settings), row.tracking_verified))
    return render(
        request,
        "domain.html",
        {
            "identity": identity,
            "section": "domains",
            "domain": row,
            "records": records,
            "return_path": settings.return_path_domain,
            "notice": notice_of(request),
        },
    )


@router.post("/domains/{domain_id}/verify-dkim")
async def verify_dkim(domain_id: EntityId, session: Session, settings: AppSettings, form: CheckedForm) -> Response:
    row = await domains_service.verify_dkim(session=session, domain_id=domain_id, dns=lookup_for(settings.dns_resolver))
    return redirect(f"{PREFIX}/domains/{domain_id}", notice="dkim-verified" if row.dkim_verified else "dkim-missing")


@router.post("/domains/{domain_id}/delete")
async def delete_domain(domain_id: EntityId, session: Session, form: CheckedForm) -> Response:
    await domains_service.delete_domain(session=session, domain_id=domain_id)
    return redirect(f"{PREFIX}/domains", notice="domain-deleted")
