"""Postmark's `count`/`offset` paging, required on every list endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Path, Query

from shared.constants import MAX_PAGE_COUNT

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
