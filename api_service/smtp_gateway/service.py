"""Storing what the SMTP gateway hands over: one message, or a batch of them in one transaction.

A batch is the messages that the gateway's connections submitted at the same moment, possibly for
several servers. Each is read, checked and stored exactly as if it had come alone (intake's
`accept`, policy BOUNCE, idempotent by its bytes and recipients); the caller commits once for all of
them and only then answers, so every `250` the gateway gives still means "committed". One message
must not take its neighbours down with it: its own problems are its own outcome, and whatever the
fast path cannot finish is done again message by message, each in a savepoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.offload import cpu_bound
from api_service.email import service as intake
from api_service.email.from_mime import from_mime
from api_service.email.message import OutgoingMessage
from api_service.errors import InvalidToken, PostmarkError
from api_service.models import Server
from api_service.servers import service as servers
from shared.constants import ErrorCode
from shared.schemas.smtp import SmtpBatchMessage, SmtpSubmissionResult

log = logging.getLogger("postgate.smtp_gateway")

STORE_FAILED = "Temporary failure storing the message, please retry."


@dataclass(frozen=True, slots=True)
class Read:
    """A submitted message, parsed, and the key that recognises a retry of it."""

    message: OutgoingMessage
    idempotency: intake.Idempotency


def read_raw(raw: bytes, *, mail_from: str, rcpt_tos: list[str]) -> Read:
    message = from_mime(raw, mail_from=mail_from, rcpt_tos=rcpt_tos)
    return Read(
        message=message, idempotency=intake.Idempotency.for_smtp(raw=raw, recipients=message.recipients() + message.invalid_recipients)
    )


def _read_all(messages: list[SmtpBatchMessage]) -> list[Read | PostmarkError]:
    read: list[Read | PostmarkError] = []
    for item in messages:
        try:
            read.append(read_raw(item.raw, mail_from=item.envelope.MailFrom, rcpt_tos=list(item.envelope.RcptTo)))
        except PostmarkError as exc:
            read.append(exc)
    return read


Outcome = SmtpSubmissionResult | PostmarkError


async def store_one(*, session: AsyncSession, server: Server, read: Read, message_id_domain: str) -> SmtpSubmissionResult:
    """One message on its own (the unbatched endpoint); raises its PostmarkError."""
    replay = await intake.begin_idempotent(session=session, server_id=server.id, idempotency=read.idempotency)
    if replay is not None:
        return SmtpSubmissionResult.model_validate({**replay.body, "Duplicate": True})
    [outcome] = await intake.accept(
        session=session, server=server, items=[read.message], policy=intake.Policy.BOUNCE, message_id_domain=message_id_domain
    )
    if isinstance(outcome, PostmarkError):
        raise outcome
    result = SmtpSubmissionResult(MessageID=str(outcome.message_id), Accepted=outcome.queued, Refused=outcome.refused)
    await intake.finish_idempotent(session=session, server_id=server.id, idempotency=read.idempotency, body=result.model_dump())
    return result


async def store_batch(
    *, session: AsyncSession, messages: list[SmtpBatchMessage], refused: dict[int, PostmarkError], message_id_domain: str
) -> list[Outcome]:
    """One outcome per message, in order; nothing committed here (the request boundary commits once).

    `refused` holds the messages already answered (over their server's rate limit), by position.
    The fast path stores everything without savepoints. Anything unusual on it (a database error,
    a message intake refuses, a server deleted meanwhile) undoes the whole transaction, and the
    batch is stored again with every message in a savepoint of its own, so that only the message
    concerned fails and leaves nothing behind (not even its idempotency key).
    """
    reads = await cpu_bound(sum(len(m.raw) for m in messages), _read_all, messages)
    batch = Batch(messages=messages, reads=reads, refused=refused, message_id_domain=message_id_domain)
    try:
        return await _store(session=session, batch=batch, isolated=False)
    except (SQLAlchemyError, _Unusual) as exc:
        log.info("an SMTP batch of %d needs one savepoint per message (%s)", len(messages), type(exc).__name__)
        await session.rollback()
    return await _store(session=session, batch=batch, isolated=True)


class _Unusual(Exception):
    """The fast path met something that needs a message's work undone on its own."""


@dataclass(frozen=True, slots=True)
class Batch:
    messages: list[SmtpBatchMessage]
    reads: list[Read | PostmarkError]
    refused: dict[int, PostmarkError]
    message_id_domain: str


async def _store(*, session: AsyncSession, batch: Batch, isolated: bool) -> list[Outcome]:
    outcomes: dict[int, Outcome] = dict(batch.refused)
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(batch.messages):
        if index not in outcomes:
            groups.setdefault(item.envelope.Token, []).append(index)
    for token, indices in groups.items():
        server = await servers.get_server_by_token(session=session, token=token)
        if server is None:
            outcomes.update(dict.fromkeys(indices, InvalidToken()))
            continue
        if not server.smtp_api_activated:
            try:
                servers.require_smtp_enabled(server)
            except PostmarkError as exc:
                outcomes.update(dict.fromkeys(indices, exc))
            continue
        ready: list[tuple[int, Read]] = []
        for index in indices:
            read = batch.reads[index]
            if isinstance(read, PostmarkError):
                outcomes[index] = read
            else:
                ready.append((index, read))
        if not isolated:
            outcomes.update(await _accept_group(session=session, server=server, ready=ready, message_id_domain=batch.message_id_domain))
            continue
        for entry in ready:
            outcomes.update(await _accept_alone(session=session, server=server, entry=entry, message_id_domain=batch.message_id_domain))
    return [outcomes[index] for index in range(len(batch.messages))]


async def _accept_alone(*, session: AsyncSession, server: Server, entry: tuple[int, Read], message_id_domain: str) -> dict[int, Outcome]:
    index, read = entry
    savepoint = await session.begin_nested()
    try:
        outcome = await store_one(session=session, server=server, read=read, message_id_domain=message_id_domain)
    except PostmarkError as exc:
        await savepoint.rollback()
        return {index: exc}
    except SQLAlchemyError as exc:
        if not savepoint.is_active:
            raise
        await savepoint.rollback()
        log.warning("storing an SMTP message failed: %s", type(exc).__name__)
        return {index: PostmarkError(ErrorCode.MAINTENANCE, STORE_FAILED, 503)}
    await savepoint.commit()
    return {index: outcome}


async def _accept_group(
    *, session: AsyncSession, server: Server, ready: list[tuple[int, Read]], message_id_domain: str
) -> dict[int, Outcome]:
    """One server's messages: their keys claimed in one statement, stored by one `accept`, their
    answers recorded in one statement. Raises _Unusual for anything that is not plain success."""
    if not ready:
        return {}
    outcomes: dict[int, Outcome] = {}
    first_of: dict[str, int] = {}  # the same bytes to the same recipients twice in one batch: a retry
    copies: list[tuple[int, int]] = []
    for index, read in ready:
        key = read.idempotency.key
        if key in first_of:
            copies.append((index, first_of[key]))
        else:
            first_of[key] = index
    claimed = await intake.claim_smtp_keys(session=session, server_id=server.id, keys=list(first_of))
    fresh: list[tuple[int, Read]] = []
    by_index = dict(ready)
    for key, index in first_of.items():
        read = by_index[index]
        if key in claimed:
            fresh.append((index, read))
            continue
        # Taken: intake's own check tells a retry (its stored answer) from one still under way.
        try:
            replay = await intake.begin_idempotent(session=session, server_id=server.id, idempotency=read.idempotency)
        except PostmarkError as exc:
            outcomes[index] = exc
            continue
        if replay is None:  # its record expired between the two statements: it is ours now
            fresh.append((index, read))
        else:
            outcomes[index] = SmtpSubmissionResult.model_validate({**replay.body, "Duplicate": True})
    if fresh:
        try:
            accepted = await intake.accept(
                session=session,
                server=server,
                items=[read.message for _, read in fresh],
                policy=intake.Policy.BOUNCE,
                message_id_domain=message_id_domain,
            )
        except InvalidToken as exc:  # deleted meanwhile; its keys are claimed: undo, then message by message
            raise _Unusual(type(exc).__name__) from exc
        responses: dict[str, SmtpSubmissionResult] = {}
        for (index, read), outcome in zip(fresh, accepted, strict=True):
            if isinstance(outcome, PostmarkError):
                raise _Unusual(type(outcome).__name__)
            result = SmtpSubmissionResult(MessageID=str(outcome.message_id), Accepted=outcome.queued, Refused=outcome.refused)
            responses[read.idempotency.key] = result
            outcomes[index] = result
        bodies = {key: result.model_dump_json() for key, result in responses.items()}
        await intake.answer_smtp_keys(session=session, server_id=server.id, bodies=bodies)
    for index, first in copies:
        original = outcomes[first]
        outcomes[index] = original.model_copy(update={"Duplicate": True}) if isinstance(original, SmtpSubmissionResult) else original
    return outcomes
