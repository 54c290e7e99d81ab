"""Storing what the SMTP gateway hands over: one message, or a batch of them in one transaction.

A batch is the messages that the gateway's connections submitted at the same moment, possibly for
several servers. Each is read, checked and stored exactly as if it had come alone (intake's
`accept`, policy BOUNCE, idempotent by its bytes and recipients); the caller commits once for all of
them and only then answers, so every `250` the gateway gives still means "committed". One message
must not take its neighbours down with it: its own problems are its own outcome, and a database
error inside a server's group is retried message by message.
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
    """
    reads = await cpu_bound(sum(len(m.raw) for m in messages), _read_all, messages)
    outcomes: dict[int, Outcome] = dict(refused)
    groups: dict[str, list[int]] = {}
    for index, item in enumerate(messages):
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
            read = reads[index]
            if isinstance(read, PostmarkError):
                outcomes[index] = read
            else:
                ready.append((index, read))
        outcomes.update(await _store_group(session=session, server=server, ready=ready, message_id_domain=message_id_domain))
    return [outcomes[index] for index in range(len(messages))]


async def _store_group(
    *, session: AsyncSession, server: Server, ready: list[tuple[int, Read]], message_id_domain: str
) -> dict[int, Outcome]:
    """One server's messages, in a savepoint, so a failure here leaves the other groups' work intact."""
    try:
        return await _in_savepoint(session=session, server=server, ready=ready, message_id_domain=message_id_domain)
    except InvalidToken as exc:  # the server was deleted meanwhile: every message of it
        return dict.fromkeys((index for index, _ in ready), exc)
    except SQLAlchemyError as exc:
        if len(ready) == 1:
            log.warning("storing an SMTP message failed: %s", type(exc).__name__)
            return {ready[0][0]: PostmarkError(ErrorCode.MAINTENANCE, STORE_FAILED, 503)}
        # Which message broke the group is unknown: each on its own, so only that one fails.
        log.warning("storing a batch of %d SMTP messages failed (%s); storing them one by one", len(ready), type(exc).__name__)
        outcomes: dict[int, Outcome] = {}
        for entry in ready:
            outcomes.update(await _store_group(session=session, server=server, ready=[entry], message_id_domain=message_id_domain))
        return outcomes


async def _in_savepoint(
    *, session: AsyncSession, server: Server, ready: list[tuple[int, Read]], message_id_domain: str
) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    while ready:
        savepoint = await session.begin_nested()
        try:
            attempt = await _accept_group(session=session, server=server, ready=ready, message_id_domain=message_id_domain)
        except (SQLAlchemyError, PostmarkError):
            if savepoint.is_active:
                await savepoint.rollback()
            raise
        failed = {index for index, outcome in attempt.items() if isinstance(outcome, PostmarkError)}
        if not failed:
            await savepoint.commit()
            outcomes.update(attempt)
            return outcomes
        # A refused message must leave nothing behind, not even its idempotency key (a retry
        # would be told it is "still being processed"): undo the group, store the others again.
        await savepoint.rollback()
        outcomes.update({index: attempt[index] for index in failed})
        ready = [(index, read) for index, read in ready if index not in failed]
    return outcomes


async def _accept_group(
    *, session: AsyncSession, server: Server, ready: list[tuple[int, Read]], message_id_domain: str
) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    fresh: list[tuple[int, Read]] = []
    first_of: dict[str, int] = {}  # the same bytes to the same recipients twice in one batch: a retry
    copies: list[tuple[int, int]] = []
    for index, read in ready:
        key = read.idempotency.key
        if key in first_of:
            copies.append((index, first_of[key]))
            continue
        try:
            replay = await intake.begin_idempotent(session=session, server_id=server.id, idempotency=read.idempotency)
        except PostmarkError as exc:
            outcomes[index] = exc
            continue
        if replay is not None:
            outcomes[index] = SmtpSubmissionResult.model_validate({**replay.body, "Duplicate": True})
            continue
        first_of[key] = index
        fresh.append((index, read))
    if fresh:
        accepted = await intake.accept(
            session=session,
            server=server,
            items=[read.message for _, read in fresh],
            policy=intake.Policy.BOUNCE,
            message_id_domain=message_id_domain,
        )
        for (index, read), outcome in zip(fresh, accepted, strict=True):
            if isinstance(outcome, PostmarkError):
                outcomes[index] = outcome
                continue
            result = SmtpSubmissionResult(MessageID=str(outcome.message_id), Accepted=outcome.queued, Refused=outcome.refused)
            await intake.finish_idempotent(session=session, server_id=server.id, idempotency=read.idempotency, body=result.model_dump())
            outcomes[index] = result
    for index, first in copies:
        original = outcomes[first]
        outcomes[index] = original.model_copy(update={"Duplicate": True}) if isinstance(original, SmtpSubmissionResult) else original
    return outcomes
