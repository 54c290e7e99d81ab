"""Roles in the console: one rule per route, Viewers read only, Editors change their servers only,
Owners manage users; disabling a user ends their sessions at once; invitations by mailed link."""

from __future__ import annotations

import logging
import re
from email import message_from_bytes, policy
from email.message import EmailMessage

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select

from api_service.config import Settings
from api_service.console import access, cli
from api_service.console import service as console_service
from api_service.models import AccountRole, Message, Server, ServerRole
from tests.console.conftest import Console, sign_in, signed_in_console
from tests.factories import ServerHandle, create_server, sending_server

pytestmark = pytest.mark.asyncio

PASSWORD = "correct horse battery"


async def add_user(
    app: FastAPI, name: str, role: AccountRole | ServerRole, servers: list[int] | None = None, *, bodies: bool = False
) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        await console_service.create_user(
            session=session, username=name, password=PASSWORD, role=role, server_ids=servers, can_read_bodies=bodies
        )


async def user_console(app: FastAPI, name: str) -> Console:
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://postgate.test")
    return await signed_in_console(client, name, PASSWORD)


async def sent_message(client: httpx.AsyncClient, server: ServerHandle) -> str:
    from tests.factories import message

    response = await client.post("/email", json=message(TextBody="secret body text"), headers=server.headers)
    assert response.status_code == 200, response.text
    message_id: str = response.json()["MessageID"]
    return message_id


class TestRules:
    async def test_every_console_route_has_a_rule(self, app: FastAPI) -> None:
        missing = [
            (method, route.path)
            for route in app.routes
            if isinstance(route, APIRoute) and route.path.startswith("/console")
            for method in route.methods or ()
            if access.capability_of(method, route.path_format.removeprefix("/console")) is None
        ]
        assert missing == []

    async def test_a_path_without_a_rule_is_refused(self) -> None:
        assert access.capability_of("GET", "/something-new") is None
        assert access.capability_of("POST", "/servers/{server_id}/settings/smtp") is access.Capability.EDIT_SERVER
        assert access.capability_of("GET", "/servers/{server_id}/activity") is access.Capability.VIEW_SERVER


class TestViewer:
    async def test_viewer_reads_activity_but_never_a_form_or_a_token(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        other = await create_server(client, "Other")
        message_id = await sent_message(client, server)
        await add_user(app, "vera", ServerRole.VIEWER, [server.id])
        vera = await user_console(app, "vera")
        listing = await vera.get("/console/servers")
        assert "Other" not in listing.text
        assert server.token[-4:] not in listing.text
        assert 'action="/console/servers"' not in listing.text
        activity = await vera.get(f"/console/servers/{server.id}/activity")
        assert activity.status_code == 200
        assert "/settings" not in activity.text.split("<main")[0]
        page = await vera.get(f"/console/servers/{server.id}/messages/{message_id}")
        assert page.status_code == 200
        assert "secret body text" not in page.text
        assert 'id="bodies-hidden"' in page.text
        assert (await vera.get(f"/console/servers/{server.id}/messages/{message_id}/raw")).status_code == 403
        for path in ("settings", "webhooks", "templates", "streams", "suppressions", "inbound-rules", "delete"):
            assert (await vera.get(f"/console/servers/{server.id}/{path}")).status_code == 403, path
        posts = ("settings/smtp", "webhooks", "suppressions", "streams", "templates", "delete", "color")
        for path in posts:
            assert (await vera.post(f"/console/servers/{server.id}/{path}", {"url": "http://x"})).status_code == 403, path
        assert (await vera.get(f"/console/servers/{other.id}/activity")).status_code == 404
        for path in ("/console/domains", "/console/senders", "/console/users"):
            assert (await vera.get(path)).status_code == 403, path

    async def test_viewer_allowed_bodies_reads_them(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await sending_server(client)
        message_id = await sent_message(client, server)
        await add_user(app, "bob", ServerRole.VIEWER, [server.id], bodies=True)
        bob = await user_console(app, "bob")
        assert "secret body text" in (await bob.get(f"/console/servers/{server.id}/messages/{message_id}")).text
        assert (await bob.get(f"/console/servers/{server.id}/messages/{message_id}/raw")).status_code == 200


class TestEditorAndAdmin:
    async def test_editor_changes_settings_of_their_server_only(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await create_server(client, "Mine")
        other = await create_server(client, "Not mine")
        await add_user(app, "ed", ServerRole.EDITOR, [server.id])
        ed = await user_console(app, "ed")
        assert (await ed.get(f"/console/servers/{server.id}/settings")).status_code == 200
        assert (await ed.post(f"/console/servers/{server.id}/settings/smtp", {"enabled": "on"})).status_code == 303
        assert (await ed.get(f"/console/servers/{other.id}/settings")).status_code == 404
        assert (await ed.post(f"/console/servers/{server.id}/delete")).status_code == 403
        assert (await ed.post("/console/servers", {"name": "New"})).status_code == 403
        assert (await ed.get("/console/users")).status_code == 403

    async def test_admin_sees_every_server_but_not_users(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        server = await create_server(client, "Any")
        await add_user(app, "ada", AccountRole.ADMIN)
        ada = await user_console(app, "ada")
        assert (await ada.get(f"/console/servers/{server.id}/settings")).status_code == 200
        assert (await ada.get("/console/domains")).status_code == 200
        assert (await ada.get("/console/users")).status_code == 403


class TestUsersPage:
    async def test_owner_changes_a_role_and_it_applies_at_the_next_click(
        self, app: FastAPI, console: Console, client: httpx.AsyncClient
    ) -> None:
        server = await create_server(client, "S")
        await add_user(app, "sam", ServerRole.VIEWER, [server.id])
        sam = await user_console(app, "sam")
        assert (await sam.get(f"/console/servers/{server.id}/settings")).status_code == 403
        changed = await console.post("/console/users/sam/role", {"role": "editor", "server": str(server.id)})
        assert changed.status_code == 303, changed.text
        assert (await sam.get(f"/console/servers/{server.id}/settings")).status_code == 200

    async def test_disabling_ends_the_sessions_at_once(self, app: FastAPI, console: Console, caplog: pytest.LogCaptureFixture) -> None:
        caplog.set_level(logging.INFO, logger="postgate.console.audit")
        await add_user(app, "dan", AccountRole.ADMIN)
        dan = await user_console(app, "dan")
        assert (await dan.get("/console/servers")).status_code == 200
        assert (await console.post("/console/users/dan/disable")).status_code == 303
        assert (await dan.get("/console/servers")).status_code == 303
        assert (await sign_in(dan.client, "dan", PASSWORD)).status_code == 401
        assert "Disabled" in (await console.get("/console/users")).text
        events = [r.getMessage() for r in caplog.records if r.name == "postgate.console.audit"]
        assert any("user.disabled by admin on dan" in e for e in events), events
        assert any("sign_in.failed by dan" in e for e in events), events

    async def test_the_last_owner_cannot_be_demoted_without_an_account_token(self, app: FastAPI, settings: Settings) -> None:
        await add_user(app, "olga", AccountRole.OWNER)
        no_token = settings.model_copy(update={"account_token": ""})
        async with app.state.sessionmaker() as session, session.begin():
            with pytest.raises(console_service.ConsoleUserError, match="last Owner"):
                await console_service.set_disabled(session=session, settings=no_token, username="olga", disabled=True)

    async def test_invitation_is_mailed_used_once_and_signs_in(self, app: FastAPI, console: Console, client: httpx.AsyncClient) -> None:
        server = await create_server(client, "S")
        invited = await console.post(
            "/console/users/invite", {"username": "ivy", "email": "ivy@example.com", "role": "viewer", "server": str(server.id)}
        )
        assert invited.status_code == 303, invited.text
        async with app.state.sessionmaker() as session:
            stmt = select(Message).join(Server, Server.id == Message.server_id).where(Message.tag == "console-invitation")
            [mail] = (await session.execute(stmt)).scalars().all()
        assert mail.recipients == ["ivy@example.com"]
        parsed = message_from_bytes(mail.raw_mime, _class=EmailMessage, policy=policy.default)
        body = parsed.get_body(preferencelist=("plain",))
        assert body is not None
        found = re.search(r"/console/invitations/([A-Za-z0-9_-]+)", str(body.get_content()))
        assert found
        link = f"/console/invitations/{found.group(1)}"
        fresh = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://postgate.test")
        assert "ivy" in (await fresh.get(link)).text
        differ = await fresh.post(link, data={"password": PASSWORD, "password_again": "something else"})
        assert differ.status_code == 422
        done = await fresh.post(link, data={"password": PASSWORD, "password_again": PASSWORD})
        assert done.status_code == 303
        assert (await fresh.post(link, data={"password": "x" * 12, "password_again": "x" * 12})).status_code == 404
        assert (await console.post("/console/users/ivy/invite")).status_code == 422  # has a password now
        ivy = await signed_in_console(fresh, "ivy", PASSWORD)
        assert (await ivy.get(f"/console/servers/{server.id}/activity")).status_code == 200


class TestCli:
    async def test_users_create_set_role_disable(self, app: FastAPI, settings: Settings, client: httpx.AsyncClient) -> None:
        server = await create_server(client, "S")
        passwords = iter([PASSWORD, PASSWORD])
        code = await _run(
            cli.users_main, ["create", "carl", "--role", "viewer", "--server", str(server.id)], lambda _: next(passwords), settings
        )
        assert code == 0
        carl = await user_console(app, "carl")
        assert (await carl.get(f"/console/servers/{server.id}/settings")).status_code == 403
        assert await _run(cli.users_main, ["set-role", "carl", "admin"], lambda _: "", settings) == 0
        assert (await carl.get(f"/console/servers/{server.id}/settings")).status_code == 200
        assert await _run(cli.users_main, ["disable", "carl"], lambda _: "", settings) == 0
        assert (await carl.get("/console/servers")).status_code == 303
        assert await _run(cli.users_main, ["set-role", "carl", "king"], lambda _: "", settings) == 1
        assert await _run(cli.users_main, ["create", "dora", "--role", "editor"], lambda _: PASSWORD, settings) == 1
        invite = ["create", "erin", "--role", "admin", "--email", "erin@example.com", "--invite"]
        assert await _run(cli.users_main, invite, lambda _: "", settings) == 0
        async with app.state.sessionmaker() as session:
            tags = (await session.execute(select(Message.tag).where(Message.recipients.contains(["erin@example.com"])))).scalars().all()
        assert tags == ["console-invitation"]


async def _run(main: object, argv: list[str], read: object, settings: Settings) -> int:
    import asyncio

    def call() -> int:
        result: int = main(argv, read_password=read, settings=settings)  # type: ignore[operator]
        return result

    return await asyncio.to_thread(call)
