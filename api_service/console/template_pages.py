"""The console's template pages: list, create, edit and delete Standard templates and Layouts, preview
them live through the templates service's validate function, and push them to another server.

A rendered HTML body never becomes part of a console page. It is answered by its own route, with
the message preview's Content-Security-Policy, into an `<iframe sandbox>`: the editor's form is
posted into that frame (by a button without JavaScript; by console.js after each live check). The
console page shows only the check itself (errors with line and character) and the rendered subject
and text, escaped like any other text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import escape
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.datastructures import FormData

from api_service.console import service
from api_service.console.pages import PREFIX, render
from api_service.console.router import (
    CheckedForm,
    ServerPage,
    Signed,
    checked,
    failed,
    field,
    html_preview_headers,
    notice_of,
    redirect,
    server_url,
)
from api_service.core.paging import EntityId
from api_service.deps import Session, TransactionalRoute
from api_service.errors import PostmarkError
from api_service.models import Server
from api_service.servers import service as servers_service
from api_service.templates import service as templates_service
from api_service.templates.repository import StoredTemplate
from shared.constants import MAX_TEMPLATES_PER_SERVER, TemplateType
from shared.schemas.templates import (
    TemplateEdit,
    TemplatePushRequest,
    TemplatePushResult,
    TemplateValidateRequest,
    TemplateValidation,
    TemplateValidationError,
    TemplateWrite,
)

router = APIRouter(prefix=PREFIX, route_class=TransactionalRoute, include_in_schema=False)

TYPE_FILTERS = (("all", "All"), ("standard", "Standard"), ("layout", "Layouts"))
NOTICES = {
    "template-added": "The template is saved; send with it through /email/withTemplate.",
    "layout-added": "The layout is saved; Standard templates can use it now.",
    "template-deleted": "The template is deleted.",
    "templates-pushed": "The templates are copied to this server.",
}
PART_LABELS = (("Subject", "Subject"), ("HtmlBody", "HTML body"), ("TextBody", "Text body"))
PREVIEW_FRAME = "template-html"
PREVIEW_BUTTON = "template-html-preview"


# --- the editor's form --------------------------------------------------------------------------


@dataclass(slots=True)
class Editor:
    """What the editor form holds; empty strings for what is not filled in."""

    template_type: TemplateType
    name: str = ""
    alias: str = ""
    subject: str = ""
    html_body: str = ""
    text_body: str = ""
    layout: str = ""
    test_model: str = "{}"
    images: bool = False

    @property
    def is_layout(self) -> bool:
        return self.template_type is TemplateType.LAYOUT

    @classmethod
    def from_form(cls, form: FormData, template_type: TemplateType) -> Editor:
        return cls(
            template_type=template_type,
            name=field(form, "name"),
            alias=field(form, "alias"),
            subject=field(form, "subject"),
            html_body=field(form, "html_body"),
            text_body=field(form, "text_body"),
            layout=field(form, "layout"),
            test_model=field(form, "test_model"),
            images=checked(form, "images"),
        )

    @classmethod
    def from_stored(cls, stored: StoredTemplate) -> Editor:
        row = stored.row
        return cls(
            template_type=TemplateType(row.template_type),
            name=row.name,
            alias=row.alias or "",
            subject=row.subject or "",
            html_body=row.html_body or "",
            text_body=row.text_body or "",
            layout=stored.layout_alias or "",
        )

    def to_create(self) -> TemplateWrite:
        """On create the service reads an empty string as a field left out."""
        return TemplateWrite(
            Name=self.name,
            Alias=self.alias,
            TemplateType=self.template_type.value,
            Subject=None if self.is_layout else self.subject,
            HtmlBody=self.html_body,
            TextBody=self.text_body,
            LayoutTemplate=None if self.is_layout else self.layout,
        )

    def to_edit(self) -> TemplateEdit:
        """On edit an empty string clears a field (the service says when it may not be cleared)."""
        return TemplateEdit(
            Name=self.name,
            Alias=self.alias,
            Subject=None if self.is_layout else self.subject,
            HtmlBody=self.html_body,
            TextBody=self.text_body,
            LayoutTemplate=None if self.is_layout else self.layout,
        )

    def to_validate(self, model: dict[str, Any] | None) -> TemplateValidateRequest:
        return TemplateValidateRequest(
            Subject=None if self.is_layout else (self.subject or None),
            HtmlBody=self.html_body or None,
            TextBody=self.text_body or None,
            TestRenderModel=model,
            TemplateType=self.template_type.value,
            LayoutTemplate=None if self.is_layout else (self.layout or None),
        )

    def has_content(self) -> bool:
        return bool(self.html_body or self.text_body or (self.subject and not self.is_layout))


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


@dataclass(frozen=True, slots=True)
class Check:
    """The templates service's validation of the editor's content (None until there is content)."""

    validation: TemplateValidation | None
    error: str | None = None
    model_error: str | None = None

    def section(self, part: str) -> Any:
        return getattr(self.validation, part) if self.validation is not None else None

    @property
    def html(self) -> str | None:
        section = self.section("HtmlBody")
        return section.RenderedContent if section is not None else None

    @property
    def problems(self) -> list[tuple[str, TemplateValidationError]]:
        """Every error of every part, labelled with its part, for the list beside the editor."""
        return [(label, e) for part, label in PART_LABELS if (section := self.section(part)) for e in section.ValidationErrors]

    @property
    def suggested_json(self) -> str:
        return json.dumps(self.validation.SuggestedTemplateModel if self.validation else {}, indent=2, ensure_ascii=False)


async def check(*, session: AsyncSession, server_id: int, editor: Editor) -> Check:
    model, model_error = parse_test_model(editor.test_model)
    if not editor.has_content():
        return Check(validation=None, model_error=model_error)
    try:
        validation = await templates_service.validate_template(session=session, server_id=server_id, data=editor.to_validate(model))
    except PostmarkError as exc:
        return Check(validation=None, error=exc.message, model_error=model_error)
    return Check(validation=validation, model_error=model_error)


# --- pages ---------------------------------------------------------------------------------------


def templates_url(server: Server, page: str = "") -> str:
    return server_url(server, "templates" + (f"/{page}" if page else ""))


def page_notice(request: Request) -> str | None:
    return NOTICES.get(request.query_params.get("notice", "")) or notice_of(request)


@dataclass(frozen=True, slots=True)
class PushPlan:
    """A dry run of a push, shown with the button that performs it."""

    destination: Server
    result: TemplatePushResult


async def templates_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: service.Identity,
    *,
    error: str | None = None,
    status: int = 200,
    plan: PushPlan | None = None,
) -> HTMLResponse:
    shown = request.query_params.get("type", "all").lower()
    shown = shown if shown in dict(TYPE_FILTERS) else "all"
    _, found = await templates_service.list_templates(
        session=session,
        server_id=server.id,
        count=MAX_TEMPLATES_PER_SERVER,
        offset=0,
        template_type=None if shown == "all" else shown,
        layout_template=None,
    )
    _, servers = await servers_service.list_servers(session=session, count=500, offset=0, name=None)
    return render(
        request,
        "templates.html",
        {
            "identity": identity,
            "server": server,
            "section": "templates",
            "templates": found,
            "filters": TYPE_FILTERS,
            "shown": shown,
            "destinations": [s for s in servers if s.id != server.id],
            "plan": plan,
            "error": error,
            "notice": page_notice(request),
        },
        status=status,
    )


@router.get("/servers/{server_id}/templates")
async def templates(request: Request, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await templates_page(request, session, server, identity)


@router.post("/servers/{server_id}/templates/push")
async def push_templates(request: Request, server: ServerPage, session: Session, identity: Signed, form: CheckedForm) -> Response:
    """A dry run first (what would be created or changed); `apply` performs it."""
    server_id = server.id
    destination_id = int(field(form, "destination")) if field(form, "destination").isdigit() else 0
    apply = field(form, "apply") == "1"
    try:
        request_data = TemplatePushRequest(SourceServerID=server_id, DestinationServerID=destination_id, PerformChanges=apply)
    except ValidationError:
        return await templates_page(request, session, server, identity, error="Choose the server to copy the templates to.", status=422)
    try:
        result = await templates_service.push_templates(session=session, data=request_data)
        destination = await servers_service.get_server_or_raise(session=session, server_id=destination_id)
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await templates_page(request, session, reloaded, identity, error=exc.message, status=422)
    if apply:
        return redirect(templates_url(destination), notice="templates-pushed")
    return await templates_page(request, session, server, identity, plan=PushPlan(destination=destination, result=result))


async def editor_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: service.Identity,
    *,
    editor: Editor,
    stored: StoredTemplate | None,
    draft: bool,
    checked_already: Check | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    """The editor; `stored` None for a new template. A `draft` (new, or posted and refused) differs from
    what is saved, so its preview frame is filled by posting the form, not from the saved template."""
    result = checked_already or await check(session=session, server_id=server.id, editor=editor)
    layouts: list[StoredTemplate] = []
    users: list[StoredTemplate] = []
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
    server_id = server.id
    try:
        created = await templates_service.create_template(session=session, server_id=server_id, data=editor.to_create())
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await editor_page(
            request, session, reloaded, identity, editor=editor, stored=None, draft=True, error=exc.message, status=422
        )
    return redirect(templates_url(server, str(created.row.id)), notice="layout-added" if editor.is_layout else "template-added")


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


async def stored_template(session: AsyncSession, server: Server, template_id: int) -> StoredTemplate:
    return await templates_service.get_template_or_raise(session=session, server_id=server.id, id_or_alias=str(template_id))


@router.get("/servers/{server_id}/templates/{template_id}")
async def template(request: Request, template_id: EntityId, server: ServerPage, session: Session, identity: Signed) -> HTMLResponse:
    return await saved_editor_page(request, session, server, identity, template_id)


async def saved_editor_page(
    request: Request,
    session: AsyncSession,
    server: Server,
    identity: service.Identity,
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
    server_id = server.id
    try:
        await templates_service.edit_template(session=session, server_id=server_id, id_or_alias=str(template_id), data=editor.to_edit())
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        stored = await stored_template(session, reloaded, template_id)
        return await editor_page(
            request, session, reloaded, identity, editor=editor, stored=stored, draft=True, error=exc.message, status=422
        )
    return redirect(templates_url(server, str(template_id)), notice="saved")


@router.post("/servers/{server_id}/templates/{template_id}/delete")
async def delete_template(
    request: Request, template_id: EntityId, server: ServerPage, session: Session, identity: Signed, form: CheckedForm
) -> Response:
    server_id = server.id
    try:
        await templates_service.delete_template(session=session, server_id=server_id, id_or_alias=str(template_id))
    except PostmarkError as exc:
        reloaded = await failed(session, server_id)
        assert reloaded is not None  # noqa: S101 - failed() returns the server when given its id
        return await saved_editor_page(request, session, reloaded, identity, template_id, error=exc.message, status=422)
    return redirect(templates_url(server), notice="template-deleted")
