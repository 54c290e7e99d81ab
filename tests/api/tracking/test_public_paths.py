"""The public prefix is exempt from the wire rules, narrowly: API paths behave as before."""

from __future__ import annotations

import httpx
import pytest

from tests.factories import create_server

pytestmark = pytest.mark.asyncio


class TestPublicPrefix:
    async def test_form_post_to_tracking_path_is_not_refused_as_non_json(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/t/u/NotAToken", content=b"List-Unsubscribe=One-Click", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")

    async def test_form_post_to_an_api_path_is_still_415(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        response = await client.post(
            "/message-streams", content=b"ID=x", headers={**server.headers, "Content-Type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 415
        assert response.json()["ErrorCode"] == 409

    async def test_api_paths_and_query_keys_are_still_case_insensitive(self, client: httpx.AsyncClient) -> None:
        server = await create_server(client)
        response = await client.get("/Message-Streams/?MessageStreamType=Broadcasts&IncludeArchivedStreams=true", headers=server.headers)
        assert response.status_code == 200
        assert [s["ID"] for s in response.json()["MessageStreams"]] == ["broadcast"]

    async def test_pixel_needs_no_token_and_answers_a_gif(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/t/o/AnyThing_At-All")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"

    async def test_unknown_public_path_is_a_404(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/t/x/abc")).status_code == 404
