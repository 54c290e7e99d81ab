"""The console's one form helper: a refused change is rolled back and re-rendered, a done one answered."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy import func, select

from api_service.config import Settings
from api_service.console.forms import Refused, submit
from api_service.errors import PostmarkError
from api_service.models import Server
from api_service.servers import service as servers_service
from shared.constants import ErrorCode
from shared.schemas.servers import ServerCreate

pytestmark = pytest.mark.asyncio


async def server_count(app: FastAPI) -> int:
    async with app.state.sessionmaker() as session:
        return int((await session.execute(select(func.count()).select_from(Server))).scalar_one())


async def existing_server(app: FastAPI, settings: Settings) -> int:
    async with app.state.sessionmaker() as session:
        created = await servers_service.create_server(
            session=session, data=ServerCreate(Name="Existing"), url_guard=settings.webhook_url_guard()
        )
        await session.commit()
        return created.server.id


class TestSubmit:
    async def test_refusal_rolls_back_what_the_change_wrote_and_renders_the_message(self, app: FastAPI, settings: Settings) -> None:
        server_id = await existing_server(app, settings)
        seen: list[Refused] = []
        async with app.state.sessionmaker() as session:
            server = await servers_service.get_server_or_raise(session=session, server_id=server_id)

            async def change() -> None:
                # A write first, then the refusal: the helper must undo the write.
                await servers_service.create_server(
                    session=session, data=ServerCreate(Name="Half made"), url_guard=settings.webhook_url_guard()
                )
                raise PostmarkError(ErrorCode.SERVER_NAME_INVALID, "Refused after a write.")

            async def refused(r: Refused) -> Response:
                seen.append(r)
                return PlainTextResponse(f"{r.server.name}: {r.message}", status_code=422)

            response = await submit(
                session=session, server=server, change=change, done=lambda _: PlainTextResponse("done"), refused=refused
            )
            await session.commit()  # what the request boundary does after the page is rendered

        assert response.status_code == 422
        assert bytes(response.body) == b"Existing: Refused after a write."
        assert seen[0].status == 422
        assert await server_count(app) == 1

    async def test_account_wide_refusal_has_no_server(self, app: FastAPI) -> None:
        async with app.state.sessionmaker() as session:

            async def change() -> None:
                raise PostmarkError(ErrorCode.SERVER_NAME_INVALID, "No.")

            async def refused(r: Refused) -> Response:
                assert r.reloaded is None
                return PlainTextResponse(r.message, status_code=r.status)

            response = await submit(session=session, change=change, done=lambda _: PlainTextResponse("done"), refused=refused)
        assert bytes(response.body) == b"No."

    async def test_done_may_render_a_page_itself(self, app: FastAPI) -> None:
        async with app.state.sessionmaker() as session:

            async def change() -> int:
                return 7

            async def done(value: int) -> Response:
                return PlainTextResponse(str(value * 6))

            async def refused(r: Refused) -> Response:
                raise AssertionError(r.message)

            response = await submit(session=session, change=change, done=done, refused=refused)
        assert bytes(response.body) == b"42"
