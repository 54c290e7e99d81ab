"""Postmark's `count`/`offset` paging, required on every list endpoint: one dependency for all of them.

`count` is 1-500 and `offset` at least 0 everywhere (a bad or missing value is a 422 with the
ErrorCode of the route's family, from `core.errors`). The searches (outbound and inbound messages,
opens, clicks, bounces) also keep `count + offset` within 10,000, as Postmark does; the other lists
(templates, servers, signatures, domains, inbound rules) do not, so they take `Paging` and the
searches take `SearchPaging`, which is the same parameters with the window checked on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query, Request

from api_service.core.errors import query_error_code
from api_service.errors import PostmarkError
from shared.constants import MAX_PAGE_COUNT, MAX_PAGE_WINDOW

MAX_OFFSET = 1_000_000
MAX_ID = 2**63 - 1

# Database ids are BIGINT: a larger number in a path is a client error, not a database error.
EntityId = Annotated[int, Path(ge=1, le=MAX_ID)]


@dataclass(frozen=True, slots=True)
class Page:
    count: int
    offset: int


def page(
    count: Annotated[int, Query(ge=1, le=MAX_PAGE_COUNT, description="Number of records, 1-500")],
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Number of records to skip")],
) -> Page:
    return Page(count=count, offset=offset)


Paging = Annotated[Page, Depends(page)]


def search_page(request: Request, paging: Paging) -> Page:
    """`page` within Postmark's search window. A dependency runs before the route's own query
    parameters are read, so an out-of-window page is refused before any filter is looked at."""
    if paging.count + paging.offset > MAX_PAGE_WINDOW:
        raise PostmarkError(query_error_code(request.url.path), f"count + offset must not exceed {MAX_PAGE_WINDOW}.")
    return paging


SearchPaging = Annotated[Page, Depends(search_page)]
