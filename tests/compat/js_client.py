"""Postmark's official Node client (postmark.js), driven from pytest through tests/compat/js/driver.mjs.

One Node process per test session reads one JSON request per line and answers one JSON line;
`PostmarkJs.call` sends a request and turns a rejected promise into `PostmarkJsError`.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

JS_DIR = Path(__file__).parent / "js"
DRIVER = JS_DIR / "driver.mjs"
CLIENTS = JS_DIR / "node_modules" / "postmark" / "dist" / "client"
MODELS = CLIENTS / "models"
MIN_NODE_MAJOR = 18

ClientKind = Literal["server", "account"]


@dataclass(frozen=True)
class HttpExchange:
    """The last HTTP request the client made for a call, and the status it got (None: no response)."""

    method: str
    path: str
    status: int | None


class PostmarkJsError(Exception):
    """A rejected postmark.js promise: the client's error class name, HTTP status, ErrorCode and message."""

    def __init__(
        self, *, name: str, status_code: int | None, code: int | None, message: str, recipients: list[str] | None, http: HttpExchange | None
    ) -> None:
        super().__init__(f"{name} (HTTP {status_code}, ErrorCode {code}): {message}")
        self.name = name
        self.status_code = status_code
        self.code = code
        self.message = message
        self.recipients = recipients
        self.http = http


@dataclass(frozen=True)
class Outcome:
    """What a call did: its result or its error, and the HTTP exchange behind it."""

    result: Any
    error: PostmarkJsError | None
    http: HttpExchange | None


def node_unavailable_reason() -> str | None:
    """Why the JS compat tests cannot run here, or None when they can."""
    node = shutil.which("node")
    if node is None:
        return f"Node.js not found: install Node.js >= {MIN_NODE_MAJOR} and run `make install` to run the postmark.js compat tests"
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()  # noqa: S603
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE_MAJOR:
        return f"Node.js {version} is too old: install Node.js >= {MIN_NODE_MAJOR} to run the postmark.js compat tests"
    if not (JS_DIR / "node_modules" / "postmark").is_dir():
        return f"postmark.js is not installed: run `make install` (npm ci --prefix {JS_DIR})"
    return None


class NodeDriver:
    """The long-lived `node driver.mjs` process; requests are answered strictly in order."""

    def __init__(self) -> None:
        node = shutil.which("node")
        assert node is not None
        self._stderr: IO[str] = tempfile.TemporaryFile("w+")  # noqa: SIM115 - lives as long as the process
        self._process = subprocess.Popen(  # noqa: S603
            [node, str(DRIVER)], cwd=JS_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        self._next_id = 0

    def request(self, payload: dict[str, Any]) -> dict[str, Any]:
        stdin, stdout = self._process.stdin, self._process.stdout
        assert stdin is not None
        assert stdout is not None
        self._next_id += 1
        stdin.write(json.dumps({**payload, "id": self._next_id}) + "\n")
        stdin.flush()
        line = stdout.readline()
        if not line:
            self._stderr.seek(0)
            raise RuntimeError(f"the postmark.js driver exited ({self._process.wait()}): {self._stderr.read()[-2000:]}")
        reply: dict[str, Any] = json.loads(line)
        # An interrupted earlier call would leave its reply unread; never hand it to the next caller.
        if reply["id"] != self._next_id:
            raise RuntimeError(f"the postmark.js driver answered request {reply['id']}, not {self._next_id}")
        return reply

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()


class PostmarkJs:
    """postmark.js pointed at one live API: `ServerClient` or `AccountClient` with `requestHost` set to it."""

    def __init__(self, driver: NodeDriver, base_url: str) -> None:
        self._driver = driver
        self.host = base_url.removeprefix("http://").rstrip("/")

    def describe(self) -> tuple[str, dict[ClientKind, list[str]]]:
        """The client's version and the public methods of `ServerClient.prototype` and `AccountClient.prototype`."""
        result = self._driver.request({"op": "describe"})["result"]
        return result["version"], result["methods"]

    def outcome(self, client: ClientKind, token: str, method: str, *args: Any) -> Outcome:
        """Call `new <Client>(token, …)[method](...args)`; report the result or the error, without raising."""
        reply = self._driver.request({"client": client, "token": token, "host": self.host, "method": method, "args": list(args)})
        raw_http = reply.get("http")
        http = HttpExchange(raw_http["method"], raw_http["path"], raw_http["status"]) if raw_http else None
        if reply["ok"]:
            return Outcome(result=reply["result"], error=None, http=http)
        error = reply["error"]
        return Outcome(
            result=None,
            error=PostmarkJsError(
                name=error["name"],
                status_code=error["statusCode"],
                code=error["code"],
                message=error["message"],
                recipients=error["recipients"],
                http=http,
            ),
            http=http,
        )

    def call(self, client: ClientKind, token: str, method: str, *args: Any) -> Any:
        """Call a client method and return what its promise resolved to; raise `PostmarkJsError` if it rejected."""
        outcome = self.outcome(client, token, method, *args)
        if outcome.error is not None:
            raise outcome.error
        return outcome.result


@dataclass(frozen=True)
class PostmarkJsServer:
    """One Postgate server seen through postmark.js: its `ServerClient` and the account's `AccountClient`."""

    js: PostmarkJs
    id: int
    token: str
    account_token: str

    def server(self, method: str, *args: Any) -> Any:
        return self.js.call("server", self.token, method, *args)

    def account(self, method: str, *args: Any) -> Any:
        return self.js.call("account", self.account_token, method, *args)


INTERFACE = re.compile(r"^export interface (\w+)(?: extends (\w+))? \{\n(.*?)^\}", re.MULTILINE | re.DOTALL)
# Top-level members only (four spaces); members of inline object types are indented deeper.
MEMBER = re.compile(r"^    (\w+)(\??): ", re.MULTILINE)


@functools.cache
def client_interfaces() -> dict[str, tuple[str | None, dict[str, bool]]]:
    """Every `export interface` in the client's typings: name -> (base, {field: required}); ambiguous names are left out."""
    found: dict[str, list[tuple[str | None, dict[str, bool]]]] = {}
    for typings in sorted(MODELS.rglob("*.d.ts")):
        for name, base, body in INTERFACE.findall(typings.read_text()):
            found.setdefault(name, []).append((base or None, {field: not optional for field, optional in MEMBER.findall(body)}))
    return {name: versions[0] for name, versions in found.items() if len(versions) == 1}


def required_fields(interface: str) -> set[str]:
    """The fields a postmark.js model declares without `?`, its base interfaces' included."""
    base, fields = client_interfaces()[interface]
    own = {field for field, required in fields.items() if required}
    return own | (required_fields(base) if base else set())


def missing_fields(value: Any, interface: str) -> set[str]:
    """The required fields of a postmark.js model that `value` (a parsed result) lacks."""
    assert isinstance(value, dict), f"{interface} should be an object, got {value!r}"
    return required_fields(interface) - value.keys()


METHOD = re.compile(r"^    (\w+)\(.*\): Promise<(\w+)(\[\])?>;$", re.MULTILINE)


@functools.cache
def return_types() -> dict[str, tuple[str, bool]]:
    """`"<client>.<method>"` -> (the model its promise resolves to, whether it is an array of them), from the client's typings."""
    found: dict[str, tuple[str, bool]] = {}
    for kind, typings in (("server", "ServerClient.d.ts"), ("account", "AccountClient.d.ts")):
        for method, model, array in METHOD.findall((CLIENTS / typings).read_text()):
            found[f"{kind}.{method}"] = (model, bool(array))
    return found


def shape_problems(name: str, result: Any) -> set[str]:
    """The required fields of the method's declared result (each item's, for an array) that `result` lacks."""
    declared = return_types().get(name)
    if declared is None or declared[0] not in client_interfaces():
        return set()
    model, array = declared
    items = result if array and isinstance(result, list) else [result]
    return set().union(*(missing_fields(item, model) for item in items)) if items else set()
