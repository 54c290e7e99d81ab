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


# --- shapes: a result against the client's typings, recursively ---------------------------------------------

SIGNATURE = re.compile(r"^    (\w+)\(.*\): Promise<(.+)>;$", re.MULTILINE)
TYPED_MEMBER = re.compile(r"^    (\w+)(\??): (.*?);?$", re.MULTILINE)
ENUM = re.compile(r"^export declare enum (\w+) \{\n(.*?)^\}", re.MULTILINE | re.DOTALL)
ENUM_VALUE = re.compile(r'= "([^"]*)"')


@dataclass(frozen=True)
class Typings:
    """The client's return types, interfaces (members with their type text) and string enums."""

    returns: dict[str, str]
    interfaces: dict[str, tuple[str | None, dict[str, tuple[bool, str]]]]
    enums: dict[str, frozenset[str]]


@functools.cache
def typings() -> Typings:
    returns = {
        f"{kind}.{method}": returned
        for kind, file in (("server", "ServerClient.d.ts"), ("account", "AccountClient.d.ts"))
        for method, returned in SIGNATURE.findall((CLIENTS / file).read_text())
    }
    interfaces: dict[str, list[tuple[str | None, dict[str, tuple[bool, str]]]]] = {}
    enums: dict[str, frozenset[str]] = {}
    for file in sorted(MODELS.rglob("*.d.ts")):
        text = file.read_text()
        for name, base, body in INTERFACE.findall(text):
            members = {field: (not optional, kind.strip()) for field, optional, kind in TYPED_MEMBER.findall(body)}
            interfaces.setdefault(name, []).append((base or None, members))
        for name, body in ENUM.findall(text):
            enums[name] = frozenset(ENUM_VALUE.findall(body))
    unique = {name: versions[0] for name, versions in interfaces.items() if len(versions) == 1}
    return Typings(returns=returns, interfaces=unique, enums=enums)


PRIMITIVES: dict[str, tuple[type, ...]] = {"string": (str,), "number": (int, float), "boolean": (bool,), "object": (dict,)}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(type(value), type(value).__name__)


def _members(interface: str) -> dict[str, tuple[bool, str]]:
    base, members = typings().interfaces[interface]
    return (_members(base) if base and base in typings().interfaces else {}) | members


def shape_differences(value: Any, declared: str, where: str) -> list[str]:
    """How a parsed result differs from the type the client declares for it: a required field missing, a value of
    another kind, an enum value the client does not know. `null` passes for any type (Postmark answers null for
    absent strings that the typings declare as `string`); members typed inline (`{ … }`, tuples) are not checked."""
    if value is None:
        return []
    found = [_one_shape(value, alternative.strip(), where) for alternative in declared.split("|")]
    return [] if any(not problems for problems in found) else found[0]


def _one_shape(value: Any, declared: str, where: str) -> list[str]:
    expected = PRIMITIVES.get(declared)
    if expected is not None:
        ok = isinstance(value, expected) and not (declared == "number" and isinstance(value, bool))
        return [] if ok else [f"{where}: {declared} expected, got {_kind(value)}"]
    if declared in ("null", "undefined"):
        return [f"{where}: null expected, got {_kind(value)}"]
    if declared.startswith('"'):
        return [] if value == declared.strip('"') else [f"{where}: {declared} expected, got {value!r}"]
    if declared.endswith("[]"):
        if not isinstance(value, list):
            return [f"{where}: {declared} expected, got {_kind(value)}"]
        return [p for i, item in enumerate(value) for p in shape_differences(item, declared[:-2], f"{where}[{i}]")]
    name = declared.rpartition(".")[2]
    if name in typings().enums:
        return [] if value in typings().enums[name] else [f"{where}: one of {sorted(typings().enums[name])} expected, got {value!r}"]
    if name in typings().interfaces:
        if not isinstance(value, dict):
            return [f"{where}: {name} (an object) expected, got {_kind(value)}"]
        members = _members(name)
        problems = [
            f"{where}.{field}: required by {name}, missing" for field, (required, _) in members.items() if required and field not in value
        ]
        for field, (_, kind) in members.items():
            if field in value and not kind.startswith(("{", "[", "Hash<", "any")):
                problems += shape_differences(value[field], kind, f"{where}.{field}")
        return problems
    return []  # a class, an alias or an inline type: not checked
