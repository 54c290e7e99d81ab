from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from api_service.models.base import Base, CreatedAtMixin, StrEnumType
from shared.constants import TemplateType


class Template(CreatedAtMixin, Base):
    """A server's template (Postmark's Templates API): a Standard template is sent, a Layout wraps Standard ones.

    Deleting keeps the row with `deleted_at` set: Postmark still answers `GET /templates/{id}` for a deleted
    template, with `Active: false`, while its alias is free again (hence the partial unique index).
    """

    __tablename__ = "templates"
    __table_args__ = (
        Index("uq_templates_server_id_alias_key", "server_id", "alias_key", unique=True, postgresql_where=text("deleted_at IS NULL")),
    )

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    server_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("servers.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    alias: Mapped[str | None] = mapped_column(String(255), default=None)
    alias_key: Mapped[str | None] = mapped_column(
        String(255), default=None, doc="The alias lower-cased: aliases match without case, as request paths are lower-cased"
    )
    template_type: Mapped[TemplateType] = mapped_column(StrEnumType(TemplateType, 10), doc="Standard or Layout, fixed at creation")
    subject: Mapped[str | None] = mapped_column(Text, default=None, doc="Standard templates only")
    html_body: Mapped[str | None] = mapped_column(Text, default=None)
    text_body: Mapped[str | None] = mapped_column(Text, default=None)
    layout_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("templates.id", ondelete="SET NULL"), default=None, index=True, doc="The Layout a Standard template uses"
    )
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
