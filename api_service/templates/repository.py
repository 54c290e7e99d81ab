"""SQL for templates. A template's layout is a row of the same table, read with one outer join."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from api_service.core.listing import page_rows
from api_service.models import Template
from api_service.templates.rendering import TemplateParts

Layout = aliased(Template, name="layout")


@dataclass(slots=True)
class StoredTemplate:
    """A template row with the alias of the Layout it uses (Postmark's `LayoutTemplate`)."""

    row: Template
    layout_alias: str | None


@dataclass(frozen=True, slots=True)
class SendableTemplate:
    """What sending needs of a template and of its layout (None when it has none)."""

    id: int
    alias_key: str | None
    template_type: str
    parts: TemplateParts
    layout: TemplateParts | None


def _with_layout_alias(server_id: int) -> Select[Template, str | None]:
    return select(Template, Layout.alias).outerjoin(Layout, Layout.id == Template.layout_id).where(Template.server_id == server_id)


LOCK_SERVER = text("SELECT id FROM servers WHERE id = :server_id FOR NO KEY UPDATE")


async def lock_server(*, session: AsyncSession, server_id: int) -> bool:
    """Serialise the template writes of one server (the 100-template limit, alias checks); False when there is no
    such server. `FOR NO KEY UPDATE` does not block the `KEY SHARE` locks that inserting messages takes."""
    return (await session.execute(LOCK_SERVER, {"server_id": server_id})).scalar_one_or_none() is not None


async def count_active(*, session: AsyncSession, server_id: int) -> int:
    stmt = select(func.count()).select_from(Template).where(Template.server_id == server_id, Template.deleted_at.is_(None))
    return (await session.execute(stmt)).scalar_one()


async def get_template(
    *, session: AsyncSession, server_id: int, template_id: int | None = None, alias_key: str | None = None, include_deleted: bool = False
) -> StoredTemplate | None:
    """By id, or else by lower-cased alias (an alias names active templates only)."""
    stmt = _with_layout_alias(server_id)
    if template_id is not None:
        stmt = stmt.where(Template.id == template_id)
        if not include_deleted:
            stmt = stmt.where(Template.deleted_at.is_(None))
    else:
        stmt = stmt.where(Template.alias_key == alias_key, Template.deleted_at.is_(None))
    row = (await session.execute(stmt)).one_or_none()
    return None if row is None else StoredTemplate(row=row[0], layout_alias=row[1])


async def list_templates(
    *, session: AsyncSession, server_id: int, template_type: str | None, layout_key: str | None, count: int, offset: int
) -> tuple[int, list[StoredTemplate]]:
    total, rows = await page_rows(
        session=session,
        stmt=_with_layout_alias(server_id).where(Template.deleted_at.is_(None)),
        filters=[
            None if template_type is None else Template.template_type == template_type,
            None if layout_key is None else Layout.alias_key == layout_key,
        ],
        order_by=[Template.id],
        count=count,
        offset=offset,
    )
    return total, [StoredTemplate(row=r[0], layout_alias=r[1]) for r in rows]


async def active_templates(*, session: AsyncSession, server_id: int) -> list[StoredTemplate]:
    stmt = _with_layout_alias(server_id).where(Template.deleted_at.is_(None)).order_by(Template.id)
    return [StoredTemplate(row=r[0], layout_alias=r[1]) for r in (await session.execute(stmt)).all()]


async def count_layout_users(*, session: AsyncSession, layout_id: int) -> int:
    stmt = select(func.count()).select_from(Template).where(Template.layout_id == layout_id, Template.deleted_at.is_(None))
    return (await session.execute(stmt)).scalar_one()


async def add_template(*, session: AsyncSession, template: Template) -> Template:
    session.add(template)
    await session.flush()
    return template


async def id_taken(*, session: AsyncSession, template_id: int) -> bool:
    """Does any template, of any server, deleted or not, have this id?"""
    return (await session.execute(select(Template.id).where(Template.id == template_id))).first() is not None


async def advance_id_sequence(*, session: AsyncSession, at_least: int = 0) -> None:
    """The next generated id is past every id in use (after a row was written with an id of its own), and past
    `at_least`."""
    await session.execute(
        text(
            "SELECT setval(pg_get_serial_sequence('templates', 'id'), "
            "GREATEST((SELECT max(id) FROM templates), nextval(pg_get_serial_sequence('templates', 'id')), :at_least))"
        ),
        {"at_least": at_least},
    )


async def mark_deleted(*, session: AsyncSession, template: Template, at: datetime) -> None:
    template.deleted_at = at
    await session.flush()


async def templates_for_sending(*, session: AsyncSession, server_id: int, ids: set[int], alias_keys: set[str]) -> list[SendableTemplate]:
    """Every active template a request names, with its layout, in one round trip however many messages name them.

    Plain columns, not ORM entities: this is on the send path and nothing here is changed."""
    stmt = (
        select(
            Template.id,
            Template.alias_key,
            Template.template_type,
            Template.subject,
            Template.html_body,
            Template.text_body,
            Layout.id,
            Layout.html_body,
            Layout.text_body,
        )
        .outerjoin(Layout, (Layout.id == Template.layout_id) & Layout.deleted_at.is_(None))
        .where(
            Template.server_id == server_id,
            Template.deleted_at.is_(None),
            Template.id.in_(sorted(ids)) | Template.alias_key.in_(sorted(alias_keys)),
        )
    )
    return [
        SendableTemplate(
            id=r[0],
            alias_key=r[1],
            template_type=r[2],
            parts=TemplateParts(subject=r[3], html_body=r[4], text_body=r[5]),
            layout=None if r[6] is None else TemplateParts(subject=None, html_body=r[7], text_body=r[8]),
        )
        for r in (await session.execute(stmt)).all()
    ]
