"""Message activity: look-ups and reading bodies back out of the stored MIME."""

from __future__ import annotations

import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from api_service.errors import NotFound
from api_service.messages import repository
from api_service.models import Message
from shared.constants import ErrorCode


def parse_message_id(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise NotFound(ErrorCode.MESSAGE_NOT_FOUND, f"Message {value} was not found.") from None


async def get_message_or_raise(*, session: AsyncSession, server_id: int, message_id: str) -> Message:
    message = await repository.get_message(session=session, server_id=server_id, message_id=parse_message_id(message_id))
    if message is None:
        raise NotFound(ErrorCode.MESSAGE_NOT_FOUND, f"Message {message_id} was not found.")
    return message


def bodies(raw: bytes) -> tuple[str, str]:
    """(TextBody, HtmlBody) of a stored message; attachments are never returned."""
    parsed = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    text = parsed.get_body(preferencelist=("plain",))
    html = parsed.get_body(preferencelist=("html",))
    return (
        text.get_content() if text is not None else "",
        html.get_content() if html is not None else "",
    )
