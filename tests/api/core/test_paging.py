from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from api_service.core.listing import page_of, page_rows, where_all
from api_service.models import Server
from tests.factories import ACCOUNT, create_server, message, sending_server


async def servers_named(client: httpx.AsyncClient, *names: str) -> None:
    for name in names:
        await create_server(client, name)


class TestWhereAll:
    def test_absent_clauses_are_dropped(self) -> None:
        stmt = where_all(select(Server), [None, Server.name == "a", None])
        assert str(stmt.whereclause) == "servers.name = :name_1"

    def test_no_clause_leaves_the_statement_as_it_was(self) -> None:
        stmt = select(Server)
        assert where_all(stmt, [None, None]) is stmt


@pytest.mark.asyncio
class TestPageOf:
    async def test_total_counts_every_match_and_the_page_only_count_rows(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await servers_named(client, "alpha", "beta", "alphabet", "gamma")
        async with app.state.sessionmaker() as session:
            total, rows = await page_of(
                session=session,
                stmt=select(Server),
                filters=[None, Server.name.icontains("alpha")],
                order_by=[Server.id.desc()],
                count=1,
                offset=0,
            )
        assert total == 2
        assert [s.name for s in rows] == ["alphabet"]

    async def test_an_offset_past_the_end_keeps_the_total(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await servers_named(client, "alpha", "beta")
        async with app.state.sessionmaker() as session:
            total, rows = await page_of(session=session, stmt=select(Server), order_by=[Server.id], count=10, offset=5)
        assert (total, rows) == (2, [])

    async def test_page_rows_adds_columns_to_the_page_only(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        await servers_named(client, "alpha", "beta", "gamma")
        async with app.state.sessionmaker() as session:
            total, rows = await page_rows(
                session=session,
                stmt=select(Server),
                filters=[Server.name != "beta"],
                order_by=[Server.id],
                count=5,
                offset=1,
                columns=[func.upper(Server.name)],
            )
        assert total == 2
        assert [(s.name, upper) for s, upper in rows] == [("gamma", "GAMMA")]


def error(response: httpx.Response) -> tuple[int, int, str]:
    body = response.json()
    return response.status_code, body["ErrorCode"], body["Message"]


@pytest.mark.asyncio
class TestPagingParameters:
    """Postmark's limits, over HTTP: count 1-500, offset ≥ 0, and count + offset ≤ 10,000 on the searches."""

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("offset=0", "count"),
            ("count=0&offset=0", "count"),
            ("count=501&offset=0", "count"),
            ("count=5&offset=-1", "offset"),
            ("count=5", "offset"),
        ],
    )
    async def test_a_bad_count_or_offset_carries_the_route_family_error_code(
        self, client: httpx.AsyncClient, query: str, field: str
    ) -> None:
        server = await sending_server(client)
        status, code, text = error(await client.get(f"/messages/outbound?{query}", headers=server.headers))
        assert (status, code) == (422, 700)
        assert text.startswith(f"Invalid request parameter(s): '{field}': ")
        status, code, _ = error(await client.get(f"/templates?{query}", headers=server.headers))
        assert (status, code) == (422, 1100)
        status, code, _ = error(await client.get(f"/servers?{query}", headers=ACCOUNT))
        assert (status, code) == (422, 600)

    @pytest.mark.parametrize(
        ("path", "code"),
        [
            ("/messages/outbound", 700),
            ("/messages/inbound", 700),
            ("/messages/outbound/opens", 700),
            ("/messages/outbound/clicks/some-id", 700),
            ("/bounces", 1000),
        ],
    )
    async def test_a_search_past_10000_is_refused(self, client: httpx.AsyncClient, path: str, code: int) -> None:
        server = await sending_server(client)
        response = await client.get(f"{path}?count=500&offset=9501", headers=server.headers)
        assert error(response) == (422, code, "count + offset must not exceed 10000.")
        assert response.headers["X-PM-ApiErrorCode"] == str(code)

    async def test_the_window_is_checked_before_the_filters(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        response = await client.get("/messages/outbound?count=500&offset=9501&status=nonsense&fromdate=never", headers=server.headers)
        assert error(response) == (422, 700, "count + offset must not exceed 10000.")

    async def test_a_search_up_to_10000_is_answered(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        assert (await client.post("/email", json=message(), headers=server.headers)).status_code == 200
        response = await client.get("/messages/outbound?count=500&offset=9500", headers=server.headers)
        assert response.status_code == 200
        assert response.json() == {"TotalCount": 1, "Messages": []}

    async def test_the_other_lists_have_no_window(self, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        response = await client.get("/templates?count=500&offset=9501", headers=server.headers)
        assert response.json() == {"TotalCount": 0, "Templates": []}
        response = await client.get("/servers?count=500&offset=9501", headers=ACCOUNT)
        assert response.json() == {"TotalCount": 1, "Servers": []}
