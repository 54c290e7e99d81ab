"""`python -m api_service.console create-user NAME` and `set-password NAME`: console users from the shell."""

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
