"""What goes into one recipient's copy: the sealed URLs, and the plan that writes them in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from urllib.parse import quote

from api_service.tracking import tokens
from api_service.tracking.rewrite import Plan, count_tracked_links
from shared.constants import TRACKING_PATH_PREFIX, ClickLocation, TrackLinks

OPEN_SEGMENT = "o"
CLICK_SEGMENT = "c"
UNSUBSCRIBE_SEGMENT = "u"
UNSUBSCRIBE_MAILBOX = "unsubscribe"
UNSUBSCRIBE_SUBJECT = "unsubscribe"


@dataclass(frozen=True, slots=True)
class Personalisation:
    """What delivery knows that a personalised copy needs."""

    secret: str
    base_url: str
    return_path_domain: str


@dataclass(frozen=True, slots=True)
class CopySettings:
    """The message's own settings that decide what its copies get."""

    message_id: uuid.UUID
    track_opens: bool
    track_links: str
    list_unsubscribe: bool
    server_id: int | None = None
    """With `message_stream`, sealed into the tokens so they open without the message row (version 2)."""
    message_stream: str = ""


def per_recipient(settings: CopySettings) -> bool:
    """Does each recipient get a copy of its own (and so an SMTP transaction of its own)?"""
    return settings.track_opens or settings.track_links != TrackLinks.NONE or settings.list_unsubscribe


def tracking_url(base_url: str, segment: str, token: str) -> str:
    return f"{base_url.rstrip('/')}{TRACKING_PATH_PREFIX}{segment}/{token}"


def unsubscribe_mailto(return_path_domain: str, token: str) -> str:
    """A mailto: to the return-path listener; the token travels in the subject, whose case is kept."""
    return f"mailto:{UNSUBSCRIBE_MAILBOX}@{return_path_domain}?subject={quote(f'{UNSUBSCRIBE_SUBJECT} {token}')}"


def plan_for(settings: CopySettings, *, recipient: str, context: Personalisation) -> Plan:
    def seal(kind: tokens.Kind, location: ClickLocation | None = None, url: str = "") -> str:
        payload = tokens.Payload(kind, settings.message_id, recipient, location, url, settings.server_id, settings.message_stream)
        return tokens.seal(context.secret, payload)

    def link(url: str, location: ClickLocation) -> str:
        token = seal(tokens.Kind.CLICK, location, url)
        if len(token) > tokens.MAX_TOKEN_CHARS:  # it would 404: the link stays as written, untracked
            return url
        return tracking_url(context.base_url, CLICK_SEGMENT, token)

    plan = Plan(
        track_html=settings.track_links in (TrackLinks.HTML_AND_TEXT, TrackLinks.HTML_ONLY),
        track_text=settings.track_links in (TrackLinks.HTML_AND_TEXT, TrackLinks.TEXT_ONLY),
        link=link,
    )
    if settings.track_opens:
        plan.pixel_url = tracking_url(context.base_url, OPEN_SEGMENT, seal(tokens.Kind.OPEN))
    if settings.list_unsubscribe:
        token = seal(tokens.Kind.UNSUBSCRIBE)
        plan.unsubscribe_url = tracking_url(context.base_url, UNSUBSCRIBE_SEGMENT, token)
        plan.headers = [
            # RFC 2369 (folded between its two URIs) and RFC 8058 one-click.
            ("List-Unsubscribe", f"<{plan.unsubscribe_url}>,\r\n <{unsubscribe_mailto(context.return_path_domain, token)}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    return plan


def tracked_link_count(mime: bytes, track_links: str) -> int:
    """Links a copy gets rewritten for click tracking (0 when links are not tracked)."""
    if track_links == TrackLinks.NONE:
        return 0
    return count_tracked_links(
        mime,
        html_links=track_links in (TrackLinks.HTML_AND_TEXT, TrackLinks.HTML_ONLY),
        text_links=track_links in (TrackLinks.HTML_AND_TEXT, TrackLinks.TEXT_ONLY),
    )
