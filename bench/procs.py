"""Processes under measurement: start, wait for health, CPU seconds and peak RSS."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    url: str = ""

    def tree(self) -> list[psutil.Process]:
        try:
            parent = psutil.Process(self.process.pid)
            return [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _ready(health_url: str | None, port: int | None) -> bool:
    if health_url:
        try:
            return httpx.get(health_url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False
    if port:
        with socket.socket() as sock:
            sock.settimeout(1)
            return sock.connect_ex(("127.0.0.1", port)) == 0
    return True


# A benchmark offers one server token far more than the default rate limit allows. The limiter
# stays on (its cost is part of every figure) with limits no run reaches.
BENCH_ENV = {"RATE_LIMIT_SERVER_PER_SECOND": "1000000", "RATE_LIMIT_SERVER_BURST": "1000000"}


def start(
    name: str, args: Sequence[str], env: dict[str, str], *, health_url: str | None = None, port: int | None = None, timeout: float = 60
) -> Service:
    """Start a process and wait until it answers: its health URL, or a connection to `port`."""
    log = open(ROOT / "bench" / f".{name}.log", "wb")  # noqa: SIM115 - kept open for the process' lifetime
    # The benchmarks send from the signatures they create at once, as `make run` allows.
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env={"SENDER_AUTO_CONFIRM": "true", **os.environ, **BENCH_ENV, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    service = Service(name=name, process=process, url=health_url.rsplit("/", 1)[0] if health_url else "")
    deadline = time.monotonic() + timeout
    while not _ready(health_url, port):
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see bench/.{name}.log")
        if time.monotonic() > deadline:
            service.stop()
            raise TimeoutError(f"{name} did not become ready")
        time.sleep(0.1)
    return service


def postgres_processes() -> list[psutil.Process]:
    """Every PostgreSQL postmaster on the machine (their backends come and go)."""
    found = []
    for proc in psutil.process_iter(["name", "ppid"]):
        if proc.info["name"] in ("postgres", "postmaster"):
            try:
                parent_name = psutil.Process(proc.info["ppid"]).name()
            except psutil.NoSuchProcess:
                parent_name = ""
            if parent_name not in ("postgres", "postmaster"):
                found.append(proc)
    return found


def cpu_seconds(roots: list[psutil.Process], *, descendants: bool = True) -> float:
    """CPU of the roots, of their live descendants, and of the children they have reaped.

    Backends and workers exit during a run; their time survives in the parent's children_* times.
    """
    total = 0.0
    for root in roots:
        try:
            times = root.cpu_times()
            total += times.user + times.system
            if not descendants:
                continue
            total += times.children_user + times.children_system
            for child in root.children(recursive=True):
                try:
                    ct = child.cpu_times()
                    total += ct.user + ct.system
                except psutil.NoSuchProcess:
                    pass
        except psutil.NoSuchProcess:
            pass
    return total


SELF = "loadgen"  # the group that is this very process: its children are the services measured


@dataclass
class Meter:
    """CPU seconds of each group of processes over a run, and the peak RSS of each group."""

    groups: dict[str, list[psutil.Process]]
    start_cpu: dict[str, float] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Meter:
        self.start_cpu = {name: cpu_seconds(procs, descendants=name != SELF) for name, procs in self.groups.items()}
        self.peak_rss = dict.fromkeys(self.groups, 0)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            for name, roots in self.groups.items():
                rss = 0
                procs = []
                for root in roots:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        procs += [root] if name == SELF else [root, *root.children(recursive=True)]
                for proc in procs:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        rss += proc.memory_info().rss
                self.peak_rss[name] = max(self.peak_rss[name], rss)
            self._stop.wait(0.1)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.cpu = {name: cpu_seconds(procs, descendants=name != SELF) - self.start_cpu[name] for name, procs in self.groups.items()}
