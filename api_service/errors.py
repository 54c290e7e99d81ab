"""Domain errors, all rendered as Postmark's `{"ErrorCode": N, "Message": "…"}`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shared.constants import ErrorCode


class PostmarkError(Exception):
    """An error a client can act on; `http_status` defaults to 422 as in Postmark."""

    def __init__(self, error_code: int, message: str, http_status: int = 422) -> None:
        super().__init__(message)
        self.error_code = int(error_code)
        self.message = message
        self.http_status = http_status

    @property
    def extra(self) -> dict[str, Any]:
        """Keys the response carries beside ErrorCode and Message (ErrorCode 11's `Errors`)."""
        return {}


class InvalidToken(PostmarkError):
    def __init__(self, message: str | None = None) -> None:
        super().__init__(
            ErrorCode.INVALID_TOKEN,
            message or "Request does not contain a valid Server token. Please check that the X-Postmark-Server-Token header is set.",
            401,
        )


class InvalidEmailRequest(PostmarkError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.INVALID_EMAIL_REQUEST, message)


class SenderSignatureNotFound(PostmarkError):
    def __init__(self, address: str) -> None:
        super().__init__(
            ErrorCode.SENDER_SIGNATURE_NOT_FOUND,
            f"The 'From' address you supplied ({address}) is not a Sender Signature on your account. "
            "Please add and confirm this address in order to be able to use it in the 'From' field of your messages.",
        )


class SenderSignatureNotConfirmed(PostmarkError):
    """ErrorCode 400 as in Postmark's current table (its legacy 401 is no longer listed), worded for the case."""

    def __init__(self, address: str) -> None:
        super().__init__(
            ErrorCode.SENDER_SIGNATURE_NOT_FOUND,
            f"The 'From' address you supplied ({address}) is not a confirmed Sender Signature on your account. "
            "Please confirm this address (follow the link mailed to it) in order to be able to use it in the 'From' field of your messages.",
        )


@dataclass(frozen=True, slots=True)
class Inactive:
    """Why one recipient is inactive: HardBounce, SpamComplaint, ManualSuppression or Unsubscribe, and since when."""

    email: str
    reason: str
    since: datetime

    def wire(self) -> dict[str, str]:
        since = self.since.astimezone(UTC).isoformat().replace("+00:00", "Z")
        return {"Email": self.email, "Reason": self.reason, "Since": since}


class InactiveRecipients(PostmarkError):
    """ErrorCode 406 with Postmark's exact Message; beyond Postmark, `InactiveRecipients` lists each address with its
    reason, so a client reads them without parsing the Message (whose wording Postmark has changed before)."""

    def __init__(self, addresses: list[str], *, batch: bool = False, details: list[Inactive] | None = None) -> None:
        if batch:
            message = (
                "You tried to send to a recipient that has been marked as inactive. "
                f"Found inactive addresses: {', '.join(addresses)}. Inactive recipients are ones that have "
                "generated a hard bounce, a spam complaint, or a manual suppression. "
            )
        else:
            message = (
                "You tried to send to recipient(s) that have been marked as inactive. "
                f"Found inactive addresses: {', '.join(addresses)}. Inactive recipients are ones that have "
                "generated a hard bounce, a spam complaint, or a manual suppression."
            )
        super().__init__(ErrorCode.INACTIVE_RECIPIENT, message)
        self.addresses = addresses
        self.details = details or []

    @property
    def extra(self) -> dict[str, Any]:
        return {"InactiveRecipients": [d.wire() for d in self.details]} if self.details else {}


class ForbiddenAttachment(PostmarkError):
    def __init__(self) -> None:
        super().__init__(ErrorCode.FORBIDDEN_ATTACHMENT, "Attachment file type not allowed.")


class NotFound(PostmarkError):
    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(error_code, message, 404)


class MultipleErrors(PostmarkError):
    """ErrorCode 11: several problems at once, each under the field it is about (Postmark's Bulk API shape)."""

    def __init__(self, errors: dict[str, list[PostmarkError]]) -> None:
        super().__init__(ErrorCode.MULTIPLE_ERRORS, "Multiple errors occurred. Inspect the Errors property for more information.")
        self.errors = errors

    @property
    def extra(self) -> dict[str, Any]:
        return {
            "Errors": {field: [{"ErrorCode": e.error_code, "Message": e.message} for e in found] for field, found in self.errors.items()}
        }
