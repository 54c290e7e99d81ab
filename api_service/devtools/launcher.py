"""`make run`: database (embedded when DATABASE_URL is unset), migrations, then the API,
the SMTP gateway (with its MX listener for inbound mail on SMTP_INBOUND_PORT, 2526 by default)
and the worker in the foreground. Ctrl-C stops them all."""

from __future__ import annotations

import importlib.util
import os
import secrets
import signal
import subprocess
import sys
import time
from typing import Any

from api_service.devtools.embedded_db import DATA_DIR, ensure_database, migrate, start_embedded, with_database

SERVICES = (
    ("api", "api_service"),
    ("smtp", "smtp_service"),
    ("worker", "api_service.worker"),
)


def account_token(env: dict[str, str]) -> str:
    """ACCOUNT_TOKEN, or one generated on the first run and kept in .data/account-token."""
    if env.get("ACCOUNT_TOKEN"):
        return env["ACCOUNT_TOKEN"]
    path = DATA_DIR / "account-token"
    if path.exists():
        return path.read_text().strip()
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(20)
    path.touch(mode=0o600)
    path.write_text(token + "\n")
    return token


def runnable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module + ".__main__") is not None
    except ModuleNotFoundError:
        return False


def main() -> None:
    if sys.argv[1:2] == ["import"]:  # `postgate import …`: the account importer, not the services
        from api_service.importer.cli import main as import_main

        sys.exit(import_main(sys.argv[2:]))
    if sys.argv[1:]:  # a command: administration, or usage and a non-zero exit; only a bare `postgate` runs the services
        from api_service.console.cli import main as admin_main

        sys.exit(admin_main(sys.argv[1:]))
    env = dict(os.environ)
    embedded: Any = None
    if env.get("DATABASE_URL"):
        url = env["DATABASE_URL"]
    else:
        embedded, admin_url = start_embedded()
        url = with_database(admin_url, "postgate")
        print(f"postgate: embedded PostgreSQL running, data in {DATA_DIR.resolve() / 'pg'}", flush=True)
    ensure_database(url)
    migrate(url)
    env["DATABASE_URL"] = url
    env["ACCOUNT_TOKEN"] = account_token(env)
    # The gateway's credential on /internal/smtp/*: the API and the gateway started here share it,
    # so a new one each run unless the operator gave one (INTERNAL_TOKEN).
    if not env.get("INTERNAL_TOKEN", "").strip():
        env["INTERNAL_TOKEN"] = secrets.token_hex(20)
    # A fresh local install has no mail path for a confirmation link to arrive by: signatures and
    # domains are trusted at creation unless the operator says otherwise.
    env.setdefault("SENDER_AUTO_CONFIRM", "true")
    api = f"http://{env.get('API_HOST', '127.0.0.1')}:{env.get('API_PORT', '8000')}"
    env.setdefault("API_URL", api)
    # The MX listener: inbound mail and bounces mailed to the return path.
    env.setdefault("SMTP_INBOUND_PORT", "2526")

    children: list[tuple[str, subprocess.Popen[bytes]]] = []
    try:
        for name, module in SERVICES:
            if runnable(module):
                child = subprocess.Popen([sys.executable, "-m", module], env=env)  # noqa: S603 - our own modules
                children.append((name, child))
        exit_code = supervise(children, api=api, env=env)
    finally:
        stop_all(children)
    del embedded  # the embedded server stops with the last handle
    sys.exit(exit_code)


def supervise(children: list[tuple[str, subprocess.Popen[bytes]]], *, api: str, env: dict[str, str]) -> int:
    """Wait until Ctrl-C, SIGTERM or a child's death; return the exit code to use."""
    print(
        f"postgate: API {api}  docs {api}/docs  SMTP {env.get('SMTP_HOST', '127.0.0.1')}:{env.get('SMTP_PORT', '2525')}\n"
        f"postgate: inbound mail (MX) {env.get('SMTP_HOST', '127.0.0.1')}:{env['SMTP_INBOUND_PORT']}"
        f" for <InboundHash>@{env.get('INBOUND_DOMAIN', 'inbound.localhost')} and each server's InboundDomain\n"
        f"postgate: account token {env['ACCOUNT_TOKEN']}  (header X-Postmark-Account-Token)\n"
        f"postgate: console {api}/console  (user admin, password: the account token)\n"
        "postgate: Ctrl-C stops everything",
        flush=True,
    )

    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    exit_code = 0
    while not stopping:
        for name, child in children:
            if child.poll() is not None:
                print(f"postgate: {name} exited with {child.returncode}; stopping", flush=True)
                exit_code = child.returncode or 1
                stopping = True
        time.sleep(0.2)
    return exit_code


def stop_all(children: list[tuple[str, subprocess.Popen[bytes]]]) -> None:
    for _, child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for _, child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    main()
