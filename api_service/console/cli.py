"""`python -m api_service.console create-user NAME` and `set-password NAME`, and `users create|set-role|
disable|enable`: console users from the shell. (`create-user` makes an Owner, as every user was before roles.)"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable

from api_service.config import Settings, get_settings
from api_service.console import service
from api_service.db import create_engine, create_sessionmaker


async def _apply(settings: Settings, command: str, username: str, password: str) -> None:
    engine = create_engine(settings.database_url, pool_size=1, max_overflow=0)
    try:
        async with create_sessionmaker(engine)() as session, session.begin():
            if command == "create-user":
                await service.create_user(session=session, username=username, password=password)
            else:
                await service.set_password(session=session, username=username, password=password)
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None, *, read_password: Callable[[str], str] = getpass.getpass, settings: Settings | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["users"]:
        return users_main(argv[1:], read_password=read_password, settings=settings)
    parser = argparse.ArgumentParser(prog="python -m api_service.console", description="Manage Postgate web-console users.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("create-user", "add a console user (prompts for the password)"), ("set-password", "give a user a new password")):
        commands.add_parser(name, help=text).add_argument("username")
    args = parser.parse_args(argv)
    password = read_password("Password: ")
    if read_password("Repeat the password: ") != password:
        print("The passwords differ; nothing changed.", file=sys.stderr)
        return 1
    try:
        asyncio.run(_apply(settings or get_settings(), args.command, args.username, password))
    except service.ConsoleUserError as exc:
        print(exc, file=sys.stderr)
        return 1
    done = "created" if args.command == "create-user" else "has a new password"
    print(f"Console user {args.username.strip().lower()} {done}. Sign in at /console.")
    return 0


# --- `users create|set-role|disable|enable` ----------------------------------------------------


def add_users_commands(users: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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
            if args.users_command == "create":
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
            if args.users_command == "set-role":
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
            disabled = args.users_command == "disable"
            user = await service.set_disabled(session=session, settings=settings, username=args.username, disabled=disabled)
            return f"Console user {user.username} is {'disabled and signed out' if disabled else 'enabled'}."
    finally:
        await engine.dispose()


def users_main(argv: list[str], *, read_password: Callable[[str], str] = getpass.getpass, settings: Settings | None = None) -> int:
    """`postgate users create|set-role|disable|enable …`; 0 when done, 1 when refused, 2 for bad usage."""
    parser = argparse.ArgumentParser(prog="postgate users", description="Manage Postgate web-console users and their roles.")
    add_users_commands(parser.add_subparsers(dest="users_command", required=True))
    args = parser.parse_args(argv)
    password = None
    if args.users_command == "create" and not args.invite:
        password = read_password("Password: ")
        if read_password("Repeat the password: ") != password:
            print("The passwords differ; nothing changed.", file=sys.stderr)
            return 1
    try:
        print(asyncio.run(_users_apply(settings or get_settings(), args, password)))
    except service.ConsoleUserError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0
