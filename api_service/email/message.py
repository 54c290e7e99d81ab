"""The one shape every outgoing message takes, whichever entry point it came in by.

The JSON adapter (`from_json`: `/email`, `/email/batch`, `/email/withTemplate`, `/email/batchWithTemplates`)
and the MIME adapter (`from_mime`: SMTP submissions) both produce `OutgoingMessage`s; `service.accept` runs the
same rules on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from api_service.errors import PostmarkError
from api_service.mail.addresses import Mailbox
from api_service.mail.mime import AttachmentPart
from api_service.models import MessageSource
from api_service.templates.reference import TemplateReference
from shared.constants import DEFAULT_MESSAGE_STREAM


@dataclass(slots=True)
class OutgoingMessage:
    source: MessageSource
    sender: Mailbox | None
    from_header: str = field(metadata={"doc": "the From as given, shown by the Messages API"})
    to: list[Mailbox] = field(default_factory=list)
    cc: list[Mailbox] = field(default_factory=list)
    bcc: list[Mailbox] = field(default_factory=list)
    reply_to: list[Mailbox] = field(default_factory=list)
    subject: str = ""
    tag: str = ""
    text_body: str | None = None
    html_body: str | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)
    attachments: list[AttachmentPart] = field(default_factory=list)
    attachment_names: list[str] = field(default_factory=list)
    message_stream: str = DEFAULT_MESSAGE_STREAM
    track_opens: bool | None = None
    track_links: str | None = None
    message_id: str | None = None
    """A Message-ID to keep (API `Headers`, SMTP `X-PM-KeepID`); otherwise one is generated."""
    mime: bytes | None = None
    """SMTP: the submitted message, delivered as it came (control headers removed)."""
    envelope_from: str = ""
    envelope_recipients: list[str] | None = None
    """SMTP: every RCPT TO (Bcc included). API: None, the recipients are To, Cc and Bcc."""
    template: TemplateReference | None = None
    """`/email/withTemplate`: Subject and bodies are rendered from this at accept time, before the rules run."""
    send_at: datetime | None = None
    """Beyond Postmark (API `SendAt`, SMTP `X-PM-Send-At`): hold the message until then (aware)."""
    invalid_recipients: list[str] = field(default_factory=list)
    problems: list[PostmarkError] = field(default_factory=list)
    """What was wrong while reading it (SMTP only: the API refuses such a message at once)."""

    def recipients(self) -> list[str]:
        """Every address the message goes to, once each (case-insensitively), in order."""
        if self.envelope_recipients is not None:
            candidates = self.envelope_recipients
        else:
            candidates = [m.email for m in (*self.to, *self.cc, *self.bcc)]
        seen: dict[str, str] = {}
        for email in candidates:
            seen.setdefault(email.lower(), email)
        return list(seen.values())

    def kinds(self) -> dict[str, str]:
        """Lower-cased address → to, cc or bcc (envelope-only recipients are bcc)."""
        kinds = {m.email.lower(): "bcc" for m in self.bcc}
        kinds |= {m.email.lower(): "cc" for m in self.cc}
        kinds |= {m.email.lower(): "to" for m in self.to}
        return kinds
