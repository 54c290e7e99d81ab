"""The administration command line: `postgate <command> …` (also `python -m api_service.console …`).

It reads DATABASE_URL like the services and changes the database directly; it never starts a
service. Every change is written to the audit log as `shell:<os user>`.

    create-user NAME / set-password NAME          console users (prompts for the password)
    users list|create|set-role|disable|enable …   console users and their roles
    tokens create|list|revoke --server ID …       a server's API tokens
    account-tokens create|list|revoke …           account API tokens (besides ACCOUNT_TOKEN)
    audit [--since ISO] [--until ISO] [--format jsonl|csv]   export the audit log

A new token is printed once, as the output's last line.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TextIO

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.audit import service as audit
from api_service.config import Settings, get_settings
from api_service.console import service
from api_service.db import create_engine, create_sessionmaker
from api_service.errors import PostmarkError
from api_service.models import AccountToken, ServerToken
from api_service.servers import token_service
from shared.constants import TokenScope

PROG = "postgate"
Command = Callable[[argparse.Namespace, AsyncSession, TextIO], Awaitable[int]]


def shell_actor() -> str:
    try:
        return f"shell:{getpass.getuser()}"
    except (KeyError, OSError):
        return "shell:?"


class Usage(argparse.ArgumentParser):
    """Print the usage and exit 2 on any mistake, never fall through to something else."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def parser() -> argparse.ArgumentParser:
    root = Usage(
        prog=PROG, description="Administer Postgate from the shell (reads DATABASE_URL). Without a command, `postgate` runs the services."
    )
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Usage)
    for name, text in (
        ("create-user", "add a console user (prompts for the password)"),
        ("set-password", "give a console user a new password"),
    ):
        commands.add_parser(name, help=text).add_argument("username")

    users = commands.add_parser("users", help="console users").add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=Usage
    )
    users.add_parser("list", help="list console users")
    add_users_commands(users)

    tokens = commands.add_parser("tokens", help="a server's API tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=Usage
    )
    create = tokens.add_parser("create", help="make a token; it is printed once, as the last line")
    create.add_argument("--server", type=int, required=True, help="server ID")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=[s.value for s in TokenScope], default="full")
    create.add_argument("--expires", help="ISO 8601 time (UTC unless it names an offset)")
    tokens.add_parser("list", help="a server's tokens (never the tokens themselves)").add_argument("--server", type=int, required=True)
    revoke = tokens.add_parser("revoke", help="stop a token working, at once")
    revoke.add_argument("--server", type=int, required=True)
    revoke.add_argument("--name", required=True)

    account = commands.add_parser("account-tokens", help="account API tokens").add_subparsers(
        dest="action", required=True, metavar="ACTION", parser_class=Usage
    )
    create = account.add_parser("create", help="make an account token; it is printed once, as the last line")
    create.add_argument("--name", required=True)
    create.add_argument("--scope", choices=["full", "read"], default="full")
    create.add_argument("--expires", help="ISO 8601 time (UTC unless it names an offset)")
    account.add_parser("list", help="account tokens (never the tokens themselves)")
    account.add_parser("revoke", help="stop an account token working, at once").add_argument("--name", required=True)

    export = commands.add_parser("audit", help="export the audit log, oldest first")
    export.add_argument("--since", help="ISO 8601 date or time")
    export.add_argument("--until", help="ISO 8601 date or time")
    export.add_argument("--actor", help="part of the actor (user:alice, token:ci, shell:…)")
    export.add_argument("--action", help="part of the action")
    export.add_argument("--format", choices=["jsonl", "csv"], default="jsonl")
    return root


def _when(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def _table(rows: list[ServerToken] | list[AccountToken], out: TextIO) -> None:
    print(f"{'NAME':<24} {'SCOPE':<6} {'ENDS':<6} {'CREATED':<21} {'LAST USED':<21} {'LAST IP':<16} EXPIRES", file=out)
    for row in rows:
        print(
            f"{row.name:<24} {row.scope!s:<6} {row.hint:<6} {_when(row.created_at):<21} {_when(row.last_used_at):<21} "
            f"{row.last_used_ip or '-':<16} {_when(row.expires_at)}",
            file=out,
        )


def _since(value: str | None) -> datetime | None:
    if not value:
        return None
    when = datetime.fromisoformat(value.strip())
    return when if when.tzinfo else when.replace(tzinfo=UTC)


async def tokens_command(args: argparse.Namespace, session: AsyncSession, out: TextIO) -> int:
    if args.action == "create":
        created = await token_service.create_server_token(
            session=session,
            server_id=args.server,
            name=args.name,
            scope=token_service.parse_scope(args.scope),
            expires_at=token_service.parse_expiry(args.expires),
        )
        print(f"Token {created.row.name!r} ({created.row.scope}) for server {args.server}. It is shown only now:", file=out)
        print(created.token, file=out)
    elif args.action == "list":
        _table(await token_service.list_server_tokens(session=session, server_id=args.server), out)
    else:
        row = await token_service.revoke_server_token(session=session, server_id=args.server, name=args.name)
        print(f"Token {row.name!r} of server {args.server} is revoked.", file=out)
    return 0


async def account_tokens_command(args: argparse.Namespace, session: AsyncSession, out: TextIO) -> int:
    if args.action == "create":
        created = await token_service.create_account_token(
            session=session,
            name=args.name,
            scope=token_service.parse_scope(args.scope),
            expires_at=token_service.parse_expiry(args.expires),
        )
        print(f"Account token {created.row.name!r} ({created.row.scope}). It is shown only now:", file=out)
        print(created.token, file=out)
    elif args.action == "list":
        _table(await token_service.list_account_tokens(session=session), out)
    else:
        row = await token_service.revoke_account_token(session=session, name=args.name)
        print(f"Account token {row.name!r} is revoked.", file=out)
    return 0


async def audit_command(args: argparse.Namespace, session: AsyncSession, out: TextIO) -> int:
    try:
        since, until = _since(args.since), _since(args.until)
    except ValueError as exc:
        print(f"{PROG} audit: not an ISO 8601 time: {exc}", file=sys.stderr)
        return 2
    async for line in audit.export(session=session, fmt=args.format, since=since, until=until, actor=args.actor, action=args.action):
        out.write(line)
    return 0


async def users_command(args: argparse.Namespace, session: AsyncSession, out: TextIO) -> int:
    print(f"{'USER':<32} CREATED", file=out)
    for user in await service.list_users(session=session):
        print(f"{user.username:<32} {_when(user.created_at)}", file=out)
    return 0


COMMANDS: dict[str, Command] = {
    "tokens": tokens_command,
    "account-tokens": account_tokens_command,
    "audit": audit_command,
    "users": users_command,
}


async def _run(settings: Settings, args: argparse.Namespace, out: TextIO, password: str = "") -> int:
    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            if args.command in ("create-user", "set-password"):
                if args.command == "create-user":
                    await service.create_user(session=session, username=args.username, password=password)
                else:
                    await service.set_password(session=session, username=args.username, password=password)
                audit.note_change(
                    session=session, action=f"console-user.{args.command}", target_type="console-user", target_id=args.username
                )
                code = 0
            else:
                code = await COMMANDS[args.command](args, session, out)
            await audit.record_changes(session=session, actor=shell_actor(), action=f"cli.{args.command}")
        return code
    finally:
        await engine.dispose()


def main(
    argv: list[str] | None = None,
    *,
    read_password: Callable[[str], str] = getpass.getpass,
    settings: Settings | None = None,
    out: TextIO | None = None,
) -> int:
    args = parser().parse_args(argv)
    out = out or sys.stdout
    if args.command == "users" and args.action != "list":
        return users_change(args, read_password=read_password, settings=settings, out=out)
    password = ""
    if args.command in ("create-user", "set-password"):
        password = read_password("Password: ")
        if read_password("Repeat the password: ") != password:
            print("The passwords differ; nothing changed.", file=sys.stderr)
            return 1
    try:
        code = asyncio.run(_run(settings or get_settings(), args, out, password))
    except service.ConsoleUserError as exc:
        print(exc, file=sys.stderr)
        return 1
    except PostmarkError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return 1
    except (OSError, DBAPIError) as exc:  # no database there, or not migrated: say so, no traceback
        print(f"{PROG}: cannot use the database of DATABASE_URL: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    if args.command in ("create-user", "set-password"):
        done = "created" if args.command == "create-user" else "has a new password"
        print(f"Console user {args.username.strip().lower()} {done}. Sign in at /console.", file=out)
    return code


# --- `users create|set-role|disable|enable` ----------------------------------------------------


def add_users_commands(users: argparse._SubParsersAction[Usage]) -> None:
    """The sub-commands of `postgate users` written here (create, set-role, disable, enable)."""
    roles = "owner, admin, editor or viewer (editor and viewer need --server)"
    create = users.add_parser("create", help="add a console user (prompts for the password, or mails an invitation)")
    create.add_argument("username")
    create.add_argument("--role", default="viewer", help=f"{roles}; default viewer")
    create.add_argument("--server", type=int, action="append", default=[], help="a server ID the editor or viewer gets (repeat)")
    create.add_argument("--email", default=None, help="the user's address (needed with --invite)")
    create.add_argument("--bodies", action="store_true", help="a viewer may read message bodies")
    create.add_argument("--invite", action="store_true", help="mail a single-use link to choose a password instead of prompting")
    set_role = users.add_parser("set-role", help="change a user's role (it applies at their next click)")
    set_role.add_argument("username")
    set_role.add_argument("role", help=roles)
    set_role.add_argument("--server", type=int, action="append", default=[], help="a server ID for an editor or viewer (repeat)")
    set_role.add_argument("--bodies", action=argparse.BooleanOptionalAction, default=None, help="a viewer may read message bodies")
    for name, text in (("disable", "disable a user and end their sessions at once"), ("enable", "let a disabled user sign in again")):
        users.add_parser(name, help=text).add_argument("username")


async def _users_apply(settings: Settings, args: argparse.Namespace, password: str | None) -> str:
    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            if args.action == "create":
                role = service.parse_role(args.role)
                if args.invite:
                    user = await service.invite_user(
                        session=session,
                        settings=settings,
                        username=args.username,
                        email=args.email or "",
                        role=role,
                        server_ids=args.server,
                        can_read_bodies=args.bodies,
                        actor="shell",
                    )
                    return f"Console user {user.username} is invited: a link to choose a password is mailed to {user.email}."
                user = await service.create_user(
                    session=session,
                    username=args.username,
                    password=password,
                    role=role,
                    server_ids=args.server,
                    email=args.email,
                    can_read_bodies=args.bodies,
                )
                return f"Console user {user.username} created as {role.value}. Sign in at /console."
            if args.action == "set-role":
                role = service.parse_role(args.role)
                user = await service.set_role(
                    session=session,
                    settings=settings,
                    username=args.username,
                    role=role,
                    server_ids=args.server,
                    can_read_bodies=args.bodies,
                )
                return f"Console user {user.username} is now {role.value}."
            disabled = args.action == "disable"
            user = await service.set_disabled(session=session, settings=settings, username=args.username, disabled=disabled)
            return f"Console user {user.username} is {'disabled and signed out' if disabled else 'enabled'}."
    finally:
        await engine.dispose()


def users_change(args: argparse.Namespace, *, read_password: Callable[[str], str], settings: Settings | None, out: TextIO) -> int:
    """`postgate users create|set-role|disable|enable …`; 0 when done, 1 when refused."""
    password = None
    if args.action == "create" and not args.invite:
        password = read_password("Password: ")
        if read_password("Repeat the password: ") != password:
            print("The passwords differ; nothing changed.", file=sys.stderr)
            return 1
    try:
        print(asyncio.run(_users_apply(settings or get_settings(), args, password)), file=out)
    except service.ConsoleUserError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (OSError, DBAPIError) as exc:
        print(f"{PROG}: cannot use the database of DATABASE_URL: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


def users_main(argv: list[str], *, read_password: Callable[[str], str] = getpass.getpass, settings: Settings | None = None) -> int:
    """`postgate users …` with its arguments (what `python -m api_service.console users …` runs)."""
    return main(["users", *argv], read_password=read_password, settings=settings)
