"""The intake unit of work: how every entry point stores what it accepts.

A `Send` is one request's messages for one server (a REST single send or batch, one SMTP message, a
bulk batch) with its policy, its idempotency key and how its answer's body is made. `write` stores a
group of them in the caller's transaction: every key claimed (the SMTP keys of a server in one
statement; the same key twice in a group is one request and its copy, answered as a replay), the
messages of each server and policy through one `service.accept`, and the answers recorded under
their keys (one statement per server and endpoint). Nothing here commits.

It runs in one of two ways, with the failure contract of `core.groupcommit` (its module docstring)
in both:

- `Intake.send`: REST single sends, `/email` and `/email/withTemplate`. Concurrent requests of one
  process share a transaction of the group-commit engine (its `writers`, `max_items` and window are
  the `email_group_*` settings) and each is answered after that COMMIT.
- `accept_in`/`write_in`: a caller that has a transaction already, committed at its boundary: the
  request's for `/email/batch`, `/email/batchWithTemplates` and the SMTP gateway (whose own batcher
  already gathers the messages of many connections), the bulk worker's (its cursor and row lock
  commit with the messages it releases).

What a member gets: its own `PostmarkError` when the rules refuse it (a REST single send: 422 with
its ErrorCode; in a batch the error is its entry's result), nothing of a neighbour's failure (its
`Sent`, i.e. 200 / SMTP 250), and when the COMMIT fails the exception of the COMMIT, like every
member of its group (500 / SMTP 451), with nothing stored. A member refused after its key was claimed
is written again alone so that the key goes with it (a retry must not replay a refusal as "in
progress").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.core.errors import DATABASE_OUTAGE
from api_service.core.groupcommit import GroupCommit, Write, write_in
from api_service.email import repository, service
from api_service.email.message import OutgoingMessage
from api_service.email.service import SMTP_ENDPOINT, Accepted, Idempotency, Policy, SendingServer
from api_service.errors import PostmarkError

CLOSE_TIMEOUT_SECONDS = 10.0
Outcome = Accepted | PostmarkError


def _no_body(outcomes: list[Outcome]) -> None:
    return None


@dataclass(slots=True)
class Send:
    """One member of the unit of work. `respond` makes the answer's body from the outcomes (stored
    under the key, when there is one); it raises a `PostmarkError` to refuse the whole request."""

    server: SendingServer
    items: list[OutgoingMessage | PostmarkError]
    policy: Policy
    idempotency: Idempotency | None = None
    respond: Callable[[list[Outcome]], Any] = _no_body


@dataclass(slots=True)
class Sent:
    """A member's answer: its outcomes (none for a replay) and the body of the response."""

    outcomes: list[Outcome]
    body: Any
    status: int = 200
    replay: bool = False


class _Undo(Exception):
    """A refused member holds a claimed key: the group is written again member by member."""


class Intake:
    """The group-commit engine for single sends of one API process (started with the app)."""

    def __init__(
        self,
        *,
        sessionmaker: async_sessionmaker[AsyncSession],
        message_id_domain: str,
        writers: int,
        max_messages: int,
        window_seconds: float,
    ) -> None:
        self._engine: GroupCommit[Send, Sent] = GroupCommit(
            sessionmaker=sessionmaker,
            write=_writer(message_id_domain),
            what="single sends",
            writers=writers,
            max_items=max_messages,
            window_seconds=window_seconds,
        )

    async def send(self, send: Send) -> Sent:
        """Store one member with the others of its group; returns after the group's COMMIT, raises
        its own refusal or the COMMIT's exception."""
        sent = await self._engine.submit(send)
        DATABASE_OUTAGE.succeeded()  # its group committed: an outage being reported is over
        return sent

    async def close(self) -> None:
        """Let the writers finish what is queued, then stop them."""
        await self._engine.close(drain_seconds=CLOSE_TIMEOUT_SECONDS)


async def accept_in(*, session: AsyncSession, send: Send, message_id_domain: str) -> Sent:
    """One member in the caller's transaction; raises its refusal."""
    [answer] = await write_in(session=session, items=[send], write=_writer(message_id_domain))
    if isinstance(answer, Exception):
        raise answer
    return answer


async def accept_many_in(*, session: AsyncSession, sends: list[Send], message_id_domain: str) -> list[Sent | Exception]:
    """Members in the caller's transaction, each with its own answer (its refusal as an exception)."""
    return await write_in(session=session, items=sends, write=_writer(message_id_domain))


def _writer(message_id_domain: str) -> Write[Send, Sent]:
    async def write_group(session: AsyncSession, sends: list[Send]) -> Sequence[Sent | Exception]:
        return await write(session=session, sends=sends, message_id_domain=message_id_domain)

    return write_group


@dataclass(slots=True)
class _Keys:
    """Where the group's idempotency claims stand."""

    answers: dict[int, Sent | Exception] = dataclasses.field(default_factory=dict)
    claimed: set[int] = dataclasses.field(default_factory=set)
    copies: dict[int, int] = dataclasses.field(default_factory=dict)


async def write(*, session: AsyncSession, sends: list[Send], message_id_domain: str) -> list[Sent | Exception]:
    """Store a group of members in `session`'s transaction; one answer per member, in order."""
    keys = await _claim(session=session, sends=sends)
    answers = keys.answers
    by_server: dict[tuple[int, Policy], list[int]] = {}
    for index, send in enumerate(sends):
        if index not in answers and index not in keys.copies:
            by_server.setdefault((send.server.id, send.policy), []).append(index)
    for (_, policy), indices in by_server.items():
        outcomes = await service.accept(
            session=session,
            server=sends[indices[0]].server,
            items=[item for index in indices for item in sends[index].items],
            policy=policy,
            message_id_domain=message_id_domain,
        )
        start = 0
        for index in indices:
            mine = outcomes[start : start + len(sends[index].items)]
            start += len(mine)
            try:
                answers[index] = Sent(outcomes=mine, body=sends[index].respond(mine))
            except PostmarkError as exc:
                if index in keys.claimed:
                    if len(sends) == 1:
                        raise
                    raise _Undo() from exc
                answers[index] = exc
    await _record_answers(session=session, sends=sends, answers=answers, claimed=keys.claimed)
    for index, first in keys.copies.items():
        original = answers[first]
        answers[index] = dataclasses.replace(original, outcomes=[], replay=True) if isinstance(original, Sent) else original
    return [answers[index] for index in range(len(sends))]


async def _claim(*, session: AsyncSession, sends: list[Send]) -> _Keys:
    """Claim the members' keys; a key already answered replays, one still under way is refused (409)."""
    keys = _Keys()
    first_of: dict[tuple[int, str, str], int] = {}
    smtp: dict[int, list[int]] = {}
    for index, send in enumerate(sends):
        idem = send.idempotency
        if idem is None:
            continue
        seen = first_of.setdefault((send.server.id, idem.endpoint, idem.key), index)
        first = sends[seen].idempotency
        if seen != index and first is not None and first.request_sha256 != idem.request_sha256:
            keys.answers[index] = service.key_reused()  # as it would be told after the first one
        elif seen != index:
            keys.copies[index] = seen
        elif idem.endpoint == SMTP_ENDPOINT:
            smtp.setdefault(send.server.id, []).append(index)
        else:
            await _claim_one(session=session, index=index, send=send, keys=keys)
    for server_id, indices in smtp.items():
        # A batch of SMTP submissions: their keys in one statement; one not claimed is looked at alone.
        taken = await repository.reserve_idempotency_keys(
            session=session,
            server_id=server_id,
            endpoint=SMTP_ENDPOINT,
            keys=[_key(sends[i]) for i in indices],
            window_seconds=service.IDEMPOTENCY_WINDOW_SECONDS,
        )
        for index in indices:
            if _key(sends[index]) in taken:
                keys.claimed.add(index)
            else:
                await _claim_one(session=session, index=index, send=sends[index], keys=keys)
    return keys


def _key(send: Send) -> str:
    return send.idempotency.key if send.idempotency is not None else ""


async def _claim_one(*, session: AsyncSession, index: int, send: Send, keys: _Keys) -> None:
    try:
        replay = await service.begin_idempotent(session=session, server_id=send.server.id, idempotency=send.idempotency)
    except PostmarkError as exc:
        keys.answers[index] = exc
        return
    if replay is None:
        keys.claimed.add(index)
    else:
        keys.answers[index] = Sent(outcomes=[], body=replay.body, status=replay.status, replay=True)


async def _record_answers(*, session: AsyncSession, sends: list[Send], answers: dict[int, Sent | Exception], claimed: set[int]) -> None:
    """The 200 answers of the claimed keys, one statement per server and endpoint."""
    bodies: dict[tuple[int, str], dict[str, str]] = {}
    for index in sorted(claimed):
        answer, idem = answers[index], sends[index].idempotency
        if isinstance(answer, Sent) and idem is not None:
            bodies.setdefault((sends[index].server.id, idem.endpoint), {})[idem.key] = orjson.dumps(answer.body).decode()
    for (server_id, endpoint), by_key in bodies.items():
        await repository.store_idempotent_responses(session=session, server_id=server_id, endpoint=endpoint, bodies=by_key)
