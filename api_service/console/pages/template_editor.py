"""The editor of one template or layout: create, edit, delete, and the live check and preview.

A rendered HTML body never becomes part of a console page. It is answered by its own route, with
the message preview's Content-Security-Policy, into an `<iframe sandbox>`: the editor's form is
posted into that frame (by a button without JavaScript; by console.js after each live check). The
console page shows only the check itself (errors with line and character) and the rendered subject
and text, escaped like any other text.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import escape
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from api_service.console import access
from api_service.console.forms import Refused, submit
from api_service.console.pages.templates import page_notice, templates_url
from api_service.console.rendering import PREFIX, render
from api_service.console.views import Check, Editor
from api_service.console.web import CheckedForm, ServerPage, Signed, field, html_preview_headers, redirect
from api_service.core.paging import EntityId
from api_service.deps import Session, TransactionalRoute
from api_service.errors import PostmarkError
from api_service.models import Server
from api_service.templates import service as templates_service
from shared.constants import MAX_TEMPLATES_PER_SERVER, TemplateType

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

PREVIEW_FRAME = "template-html"
PREVIEW_BUTTON = "template-html-preview"


def posted_type(form: FormData) -> TemplateType:
    return TemplateType.LAYOUT if field(form, "type").lower() == "layout" else TemplateType.STANDARD


def parse_test_model(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(model, problem): the editable test model is JSON text and must be an object."""
    if not text.strip():
        return None, None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"The test model is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."
    except RecursionError:
        return None, "The test model is nested too deeply."
    if not isinstance(value, dict):
        return None, 'The test model must be a JSON object, such as {"name": "Ann"}.'
    return value, None


async def check(*, session: AsyncSession, server_id: int, editor: Editor) -> Check:
    model, model_error = parse_test_model(editor.test_model)
    if not editor.has_content():
        return Check(validation=None, model_error=model_error)
    try:
        validation = await templates_service.validate_template(session=session, server_id=server_id, data=editor.to_validate(model))
    except PostmarkError as exc:
        return Check(validation=None, error=exc.message, model_error=model_error)
    return Check(validation=validation, model_error=model_error)


async def editor_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
    *,
    editor: Editor,
    stored: templates_service.StoredTemplate | None,
    draft: bool,
    checked_already: Check | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The editor; `stored` None for a new template. A `draft` (new, or posted and refused) differs from
    what is saved, so its preview frame is filled by posting the form, not from the saved template."""
    result = checked_already or await check(session=session, server_id=server.id, editor=editor)
    layouts: list[templates_service.StoredTemplate] = []
    users: list[templates_service.StoredTemplate] = []
    if not editor.is_layout:
        _, layouts = await templates_service.list_templates(
            session=session, server_id=server.id, count=MAX_TEMPLATES_PER_SERVER, offset=0, template_type="Layout", layout_template=None
        )
    elif stored is not None and stored.row.alias:
        _, users = await templates_service.list_templates(
            session=session,
            server_id=server.id,
            count=MAX_TEMPLATES_PER_SERVER,
            offset=0,
            template_type=None,
            layout_template=stored.row.alias,
        )
    return render(
        request,
        "template.html",
        {
            "identity": identity,
            "server": server,
            "section": "templates",
            "editor": editor,
            "stored": stored,
            "check": result,
            "layouts": layouts,
            "users": users,
            "draft": draft,
            "frame": PREVIEW_FRAME,
            "frame_src": None if draft or stored is None else templates_url(server, f"{stored.row.id}/preview.html"),
            "preview_button": PREVIEW_BUTTON,
            "submit_html": False,
            "oob": False,
            "error": error,
            "notice": page_notice(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/templates/new")
async def new_template(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    template_type = TemplateType.LAYOUT if request.query_params.get("type", "").lower() == "layout" else TemplateType.STANDARD
    return await editor_page(request, session, server, identity, editor=Editor(template_type=template_type), stored=None, draft=True)


@router.post("/servers/{server_id}/templates")
async def create_template(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    editor = Editor.from_form(form, posted_type(form))

    async def create() -> templates_service.StoredTemplate:
        return await templates_service.create_template(session=session, server_id=server.id, data=editor.to_create())

    async def refused(r: Refused) -> Response:
        return await editor_page(request, session, r.server, identity, editor=editor, stored=None, draft=True, error=r.message, status=422)

    return await submit(
        session=session,
        server=server,
        change=create,
        done=lambda created: redirect(
            templates_url(server, str(created.row.id)), notice="layout-added" if editor.is_layout else "template-added"
        ),
        refused=refused,
    )


@router.post("/servers/{server_id}/templates/preview")
async def preview(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> HTMLResponse:
    """The live check (htmx): errors by field with line and character, the rendered subject and text, the model used.

    It also names the button that console.js presses next, to post the same form into the HTML frame."""
    editor = Editor.from_form(form, posted_type(form))
    result = await check(session=session, server_id=server.id, editor=editor)
    return render(
        request,
        "_template_preview.html",
        {
            "identity": identity,
            "server": server,
            "editor": editor,
            "check": result,
            "draft": False,
            "frame": PREVIEW_FRAME,
            "frame_src": None,
            "preview_button": PREVIEW_BUTTON,
            "submit_html": True,
            "oob": True,
            "fill_model": field(form, "fill_model") == "1",
        },
    )


def preview_document(check_result: Check, *, has_html: bool) -> str:
    """The rendered HTML body, or a short note saying why there is none (shown in the frame, never in the page)."""
    if check_result.html is not None:
        return check_result.html
    if not has_html:
        note = "This template has no HTML body."
    elif check_result.error:
        note = check_result.error
    else:
        note = "The HTML body has errors; they are listed beside the editor."
    return f'<!doctype html><p style="font:14px system-ui,sans-serif;color:#6b7280">{escape(note)}</p>'


@router.post("/servers/{server_id}/templates/preview.html")
async def preview_html(server: ServerPage, session: Session, form: CheckedForm) -> HTMLResponse:
    """The editor's HTML body rendered with its test model, for the sandboxed preview frame only."""
    editor = Editor.from_form(form, posted_type(form))
    result = await check(session=session, server_id=server.id, editor=editor)
    return HTMLResponse(preview_document(result, has_html=bool(editor.html_body)), headers=html_preview_headers(images=editor.images))


async def stored_template(session: AsyncSession, server: Server, template_id: int) -> templates_service.StoredTemplate:
    return await templates_service.get_template_or_raise(session=session, server_id=server.id, id_or_alias=str(template_id))


@router.get("/servers/{server_id}/templates/{template_id}")
async def template(request: Request, template_id: EntityId, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await saved_editor_page(request, session, server, identity, template_id)


async def saved_editor_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: access.Identity,
    template_id: int,
    *,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The editor of a saved template, its test model filled from the suggested model."""
    stored = await stored_template(session, server, template_id)
    editor = Editor.from_stored(stored)
    result = await check(session=session, server_id=server.id, editor=editor)
    editor.test_model = result.suggested_json
    return await editor_page(
        request, session, server, identity, editor=editor, stored=stored, draft=False, checked_already=result, error=error, status=status
    )


@router.get("/servers/{server_id}/templates/{template_id}/preview.html")
async def stored_preview_html(
    request: Request, template_id: EntityId, server: ServerPage, session: Session, identity: Signed
) -> HTMLResponse:
    """The saved template rendered with its suggested model: what the frame shows before any editing (and without JavaScript)."""
    stored = await stored_template(session, server, template_id)
    editor = Editor.from_stored(stored)
    result = await check(session=session, server_id=server.id, editor=editor)
    images = request.query_params.get("images") == "1"
    return HTMLResponse(preview_document(result, has_html=bool(editor.html_body)), headers=html_preview_headers(images=images))


@router.post("/servers/{server_id}/templates/{template_id}")
async def edit_template(
    request: Request, template_id: EntityId, server: ServerPage, session: Session, identity: Signed, form: CheckedForm
) -> Response:
    stored = await stored_template(session, server, template_id)
    editor = Editor.from_form(form, TemplateType(stored.row.template_type))

    async def edit() -> None:
        await templates_service.edit_template(session=session, server_id=server.id, id_or_alias=str(template_id), data=editor.to_edit())

    async def refused(r: Refused) -> Response:
        reloaded = await stored_template(session, r.server, template_id)
        return await editor_page(
            request, session, r.server, identity, editor=editor, stored=reloaded, draft=True, error=r.message, status=422
        )

    return await submit(
        session=session,
        server=server,
        change=edit,
        done=lambda _: redirect(templates_url(server, str(template_id)), notice="saved"),
        refused=refused,
    )


@router.post("/servers/{server_id}/templates/{template_id}/delete")
async def delete_template(
    request: Request, template_id: EntityId, server: ServerPage, session: Session, identity: Signed, form: CheckedForm
) -> Response:
    async def delete() -> None:
        await templates_service.delete_template(session=session, server_id=server.id, id_or_alias=str(template_id))

    async def refused(r: Refused) -> Response:
        return await saved_editor_page(request, session, r.server, identity, template_id, error=r.message, status=422)

    return await submit(
        session=session,
        server=server,
        change=delete,
        done=lambda _: redirect(templates_url(server), notice="template-deleted"),
        refused=refused,
    )
