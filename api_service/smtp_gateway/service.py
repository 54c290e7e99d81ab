"""Storing what the SMTP gateway hands over: one message, or a batch of them in one transaction.

A batch is the messages that the gateway's connections submitted at the same moment, possibly for
several servers. Each is one member of intake's unit of work (`email.intake`: policy BOUNCE,
idempotent by its bytes and recipients), stored in the request's transaction, which commits once for
all of them before the answer, so every `250` the gateway gives still means "committed". A message's
own problem is its own outcome; one that cannot be stored leaves nothing behind and holds back no
other (intake's failure contract).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.core.offload import cpu_bound
from api_service.email import intake
from api_service.email.from_mime import from_mime
from api_service.email.message import OutgoingMessage
from api_service.email.service import Idempotency, Policy
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
    idempotency: Idempotency


def read_raw(raw: bytes, *, mail_from: str, rcpt_tos: list[str]) -> Read:
    message = from_mime(raw, mail_from=mail_from, rcpt_tos=rcpt_tos)
    return Read(message=message, idempotency=Idempotency.for_smtp(raw=raw, recipients=message.recipients() + message.invalid_recipients))


def _read_all(messages: list[SmtpBatchMessage]) -> list[Read | PostmarkError]:
    read: list[Read | PostmarkError] = []
    for item in messages:
        try:
            read.append(read_raw(item.raw, mail_from=item.envelope.MailFrom, rcpt_tos=list(item.envelope.RcptTo)))
        except PostmarkError as exc:
            read.append(exc)
    return read


Outcome = SmtpSubmissionResult | PostmarkError


def _respond(outcomes: list[intake.Outcome]) -> dict[str, object]:
    [outcome] = outcomes
    if isinstance(outcome, PostmarkError):
        raise outcome
    return SmtpSubmissionResult(MessageID=str(outcome.message_id), Accepted=outcome.queued, Refused=outcome.refused).model_dump()


def _member(server: Server, read: Read) -> intake.Send:
    return intake.Send(server=server, items=[read.message], policy=Policy.BOUNCE, idempotency=read.idempotency, respond=_respond)


def _result(sent: intake.Sent) -> SmtpSubmissionResult:
    result = SmtpSubmissionResult.model_validate(sent.body)
    return result.model_copy(update={"Duplicate": True}) if sent.replay else result


async def store_one(*, session: AsyncSession, server: Server, read: Read, message_id_domain: str) -> SmtpSubmissionResult:
    """One message on its own (the unbatched endpoint); raises its PostmarkError."""
    return _result(await intake.accept_in(session=session, send=_member(server, read), message_id_domain=message_id_domain))


async def store_batch(
    *, session: AsyncSession, messages: list[SmtpBatchMessage], refused: dict[int, PostmarkError], message_id_domain: str
) -> list[Outcome]:
    """One outcome per message, in order; nothing committed here (the request boundary commits once).

    `refused` holds the messages already answered (over their server's rate limit), by position.
    """
    reads = await cpu_bound(sum(len(m.raw) for m in messages), _read_all, messages)
    outcomes: dict[int, Outcome] = dict(refused)
    waiting = [index for index in range(len(messages)) if index not in outcomes]
    found = await servers.get_servers_by_tokens(session=session, tokens=[messages[index].envelope.Token for index in waiting])
    members: dict[int, intake.Send] = {}
    for index, server in zip(waiting, found, strict=True):
        read = reads[index]
        if server is None:
            outcomes[index] = InvalidToken()
        elif not server.smtp_api_activated:
            try:
                servers.require_smtp_enabled(server)
            except PostmarkError as exc:
                outcomes[index] = exc
        elif isinstance(read, PostmarkError):
            outcomes[index] = read
        else:
            members[index] = _member(server, read)
    answers = await intake.accept_many_in(session=session, sends=list(members.values()), message_id_domain=message_id_domain)
    for index, answer in zip(members, answers, strict=True):
        outcomes[index] = _outcome(answer)
    return [outcomes[index] for index in range(len(messages))]


def _outcome(answer: intake.Sent | Exception) -> Outcome:
    if isinstance(answer, intake.Sent):
        return _result(answer)
    if isinstance(answer, PostmarkError):
        return answer
    log.warning("storing an SMTP message failed: %s", type(answer).__name__)
    return PostmarkError(ErrorCode.MAINTENANCE, STORE_FAILED, 503)
