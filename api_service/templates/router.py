"""`/templates` (server token) and `PUT /templates/push` (account token)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query

from api_service.core.errors import error_responses
from api_service.core.paging import Paging
from api_service.deps import Session, TransactionalRoute
from api_service.servers.deps import AccountAuth, CurrentServer
from api_service.templates import service
from api_service.templates.repository import StoredTemplate
from shared.constants import ErrorCode
from shared.schemas.base import ErrorResponse
from shared.schemas.templates import (
    TemplateDetails,
    TemplateEdit,
    TemplateList,
    TemplatePushRequest,
    TemplatePushResult,
    TemplateSummary,
    TemplateValidateRequest,
    TemplateValidation,
    TemplateWrite,
)

router = APIRouter(route_class=TransactionalRoute, tags=["Templates"])
ERRORS = error_responses(
    invalid=(
        "ErrorCodes 1100 invalid query, 1101 no such template or layout, 1105 over 100 templates, 1109 no data, 1120 field missing, "
        "1121 field too large, 1122 field invalid (syntax, alias), 1123 field not allowed, 1130 layout in use, "
        "1131 layout placeholder `{{{ @content }}}` not present exactly once"
    ),
    not_found="ErrorCode 1101: no such template",
)
PUSH_ERRORS = error_responses(
    invalid="ErrorCodes 601 server not found, 1105 over 100 templates, 1124 nothing to push, 1125 template types differ",
    account=True,
)
IdOrAlias = Annotated[str, Path(description="A template's TemplateId, or its Alias (matched without case)", max_length=255)]


def to_summary(stored: StoredTemplate) -> TemplateSummary:
    row = stored.row
    return TemplateSummary(
        TemplateId=row.id,
        Name=row.name,
        Active=row.deleted_at is None,
        Alias=row.alias,
        TemplateType=row.template_type,
        LayoutTemplate=stored.layout_alias,
    )


def to_details(stored: StoredTemplate) -> TemplateDetails:
    row = stored.row
    return TemplateDetails(
        **to_summary(stored).model_dump(),
        Subject=row.subject,
        HtmlBody=row.html_body,
        TextBody=row.text_body,
        AssociatedServerId=row.server_id,
    )


@router.get("/templates", response_model=TemplateList, responses=ERRORS)
async def list_templates(
    server: CurrentServer,
    session: Session,
    paging: Paging,
    templatetype: Annotated[str | None, Query(description="All (default), Standard or Layout")] = None,
    layouttemplate: Annotated[str | None, Query(description="Only the templates that use this Layout (alias)", max_length=255)] = None,
) -> TemplateList:
    """List the server's templates (deleted ones are left out), oldest first."""
    total, found = await service.list_templates(
        session=session,
        server_id=server.id,
        count=paging.count,
        offset=paging.offset,
        template_type=templatetype,
        layout_template=layouttemplate,
    )
    return TemplateList(TotalCount=total, Templates=[to_summary(t) for t in found])


@router.post("/templates", response_model=TemplateSummary, responses=ERRORS)
async def create_template(server: CurrentServer, session: Session, data: Annotated[TemplateWrite, Body()]) -> TemplateSummary:
    """Create a Standard template, or a Layout (`TemplateType: Layout`) whose bodies hold `{{{ @content }}}` once."""
    return to_summary(await service.create_template(session=session, server_id=server.id, data=data))


@router.post("/templates/validate", response_model=TemplateValidation, responses=ERRORS)
async def validate_template(
    server: CurrentServer, session: Session, data: Annotated[TemplateValidateRequest, Body()]
) -> TemplateValidation:
    """Check template content without saving it: every syntax error with its position, the suggested model, the rendering."""
    return await service.validate_template(session=session, server_id=server.id, data=data)


@router.put("/templates/push", response_model=TemplatePushResult, responses=PUSH_ERRORS, dependencies=[AccountAuth])
async def push_templates(session: Session, data: Annotated[TemplatePushRequest, Body()]) -> TemplatePushResult:
    """Copy the templates that have an alias from one server to another, matched by alias (`PerformChanges: false` only reports)."""
    return await service.push_templates(session=session, data=data)


@router.get("/templates/{id_or_alias}", response_model=TemplateDetails, responses=ERRORS)
async def get_template(id_or_alias: IdOrAlias, server: CurrentServer, session: Session) -> TemplateDetails:
    """Get a template with its content, by id or alias. A deleted template is still found by id, with `Active: false`."""
    return to_details(
        await service.get_template_or_raise(session=session, server_id=server.id, id_or_alias=id_or_alias, include_deleted=True)
    )


@router.put("/templates/{id_or_alias}", response_model=TemplateSummary, responses=ERRORS)
async def edit_template(
    id_or_alias: IdOrAlias, server: CurrentServer, session: Session, data: Annotated[TemplateEdit, Body()]
) -> TemplateSummary:
    """Edit a template; a field left out (or null) keeps its value. Editing a Layout changes every template that uses it."""
    return to_summary(await service.edit_template(session=session, server_id=server.id, id_or_alias=id_or_alias, data=data))


@router.delete("/templates/{id_or_alias}", response_model=ErrorResponse, responses=ERRORS)
async def delete_template(id_or_alias: IdOrAlias, server: CurrentServer, session: Session) -> ErrorResponse:
    """Delete a template. A Layout that templates still use cannot be deleted (ErrorCode 1130)."""
    template_id = await service.delete_template(session=session, server_id=server.id, id_or_alias=id_or_alias)
    return ErrorResponse(ErrorCode=ErrorCode.OK, Message=f"Template {template_id} removed.")
