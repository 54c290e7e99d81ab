"""One way to answer a Postmark list endpoint from SQL: the filters, the total and the page.

Every list (`/messages/outbound`, `/bounces`, `/messages/inbound`, `/templates`, `/servers` …) answers
`{TotalCount, <Plural>: [...]}`: the number of rows that match, ignoring `count`/`offset`, and one
page of them in a fixed order. That was written out by hand in every repository with a list; this
is the one place it is written now. The repositories still own
their SQL: they pass the statement, the clauses and the order, and this module only assembles them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select, func, literal, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.base import ExecutableOption

Clause = ColumnElement[bool] | None
OrderBy = ColumnElement[Any] | InstrumentedAttribute[Any]
AnyRow = Row[*tuple[Any, ...]]
AnySelect = Select[*tuple[Any, ...]]
T = TypeVar("T")

# For the rest of the request's transaction only.
PLAN_PER_SEARCH = text("SET LOCAL plan_cache_mode = force_custom_plan")


def where_all(stmt: AnySelect, clauses: Iterable[Clause]) -> AnySelect:
    """`stmt` narrowed by every clause that is there: a filter the caller left out is passed as None,
    so a repository writes one conditional expression per query parameter instead of an `if` each."""
    present = [c for c in clauses if c is not None]
    return stmt.where(*present) if present else stmt


async def page_rows(
    *,
    session: AsyncSession,
    stmt: AnySelect,
    filters: Iterable[Clause] = (),
    order_by: Sequence[OrderBy],
    count: int,
    offset: int,
    columns: Sequence[ColumnElement[Any]] = (),
    options: Sequence[ExecutableOption] = (),
    count_at_most: int | None = None,
    plan_per_search: bool = False,
) -> tuple[int, Sequence[AnyRow]]:
    """(total, one page of rows) in two round trips: a `count(*)` over the filtered statement, then the page.

    `columns` and `options` shape only the page (extra values shown beside each row, deferred big
    columns), so the count never pays for them. A separate count rather than `count(*) OVER ()`
    keeps TotalCount right when `offset` is past the last row (a window count has no row to ride on).

    `count_at_most` caps the count: the searches pass their paging window (10,000), which no page
    can reach past, so counting further would only cost (seconds on millions of messages).

    `plan_per_search` plans both statements for the values searched for. The statements are
    prepared, and after five runs PostgreSQL may reuse a generic plan made without the values: for
    `recipient LIKE '%…%'` it cannot tell a rare address from a common word, and walked every
    message newest first (3 s on 700,000) where the trigram index answers in milliseconds."""
    if plan_per_search:
        await session.execute(PLAN_PER_SEARCH)
    filtered = where_all(stmt, filters)
    counted = filtered
    if count_at_most is not None:
        # The first `count_at_most` matches in the page's order: then a common filter value (a tag
        # on every tenth message) is counted by walking the ordered index until the cap, not by
        # collecting every match first, which the planner picked for an unordered LIMIT (0.5 s on
        # a million messages); a rare one (an address) still comes from its index and a small sort.
        # Its first key is order enough (no tie-break sort), so the index alone can answer it.
        counted = filtered.with_only_columns(literal(1), maintain_column_froms=True).order_by(*order_by[:1]).limit(count_at_most)
    total = (await session.execute(select(func.count()).select_from(counted.subquery()))).scalar_one()
    page = filtered.add_columns(*columns).options(*options).order_by(*order_by).limit(count).offset(offset)
    return total, (await session.execute(page)).all()


async def page_of(
    *,
    session: AsyncSession,
    stmt: Select[T],
    filters: Iterable[Clause] = (),
    order_by: Sequence[OrderBy],
    count: int,
    offset: int,
    options: Sequence[ExecutableOption] = (),
    count_at_most: int | None = None,
    plan_per_search: bool = False,
) -> tuple[int, list[T]]:
    """`page_rows` for a statement that selects one entity: the page as a list of those entities."""
    total, rows = await page_rows(
        session=session,
        stmt=stmt,
        filters=filters,
        order_by=order_by,
        count=count,
        offset=offset,
        options=options,
        count_at_most=count_at_most,
        plan_per_search=plan_per_search,
    )
    return total, [row[0] for row in rows]
