"""Postmark's `count`/`offset` paging, required on every list endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from shared.constants import MAX_PAGE_COUNT


@dataclass(frozen=True, slots=True)
class Page:
    count: int
    offset: int


def page(
    count: Annotated[int, Query(ge=1, le=MAX_PAGE_COUNT, description="Number of records, 1-500")],
    offset: Annotated[int, Query(ge=0, description="Number of records to skip")],
) -> Page:
    return Page(count=count, offset=offset)


Paging = Annotated[Page, Depends(page)]
