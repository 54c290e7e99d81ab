"""Postmark's names and numbers: headers, error codes, bounce types, limits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

SERVER_TOKEN_HEADER = "X-Postmark-Server-Token"  # noqa: S105 - a header name
ACCOUNT_TOKEN_HEADER = "X-Postmark-Account-Token"  # noqa: S105 - a header name
API_ERROR_CODE_HEADER = "X-PM-ApiErrorCode"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"

MAX_RECIPIENTS_PER_FIELD = 50
MAX_BATCH_MESSAGES = 500
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MAX_BATCH_BYTES = 50 * 1024 * 1024
MAX_SUBJECT_CHARS = 2000
MAX_TAG_CHARS = 1000
MAX_FROM_CHARS = 255
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_METADATA_KEYS = 10
MAX_METADATA_KEY_CHARS = 20
MAX_METADATA_VALUE_CHARS = 80
MAX_PAGE_COUNT = 500
MAX_PAGE_WINDOW = 10_000

DEFAULT_MESSAGE_STREAM = "outbound"

FORBIDDEN_ATTACHMENT_EXTENSIONS = frozenset(
    [
        "vbs",
        "exe",
        "bin",
        "bat",
        "chm",
        "com",
        "cpl",
        "crt",
        "hlp",
        "hta",
        "inf",
        "ins",
        "isp",
        "jse",
        "lnk",
        "mdb",
        "pcd",
        "pif",
        "reg",
        "scr",
        "sct",
        "shs",
        "vbe",
        "vba",
        "wsf",
        "wsh",
        "wsl",
        "msc",
        "msi",
        "msp",
        "mst",
    ]
)


class ErrorCode(IntEnum):
    """Postmark's API ErrorCodes used by Postgate."""

    OK = 0
    INVALID_TOKEN = 10
    MAINTENANCE = 100
    INTERNAL_ERROR = 101
    INVALID_EMAIL_REQUEST = 300
    SENDER_SIGNATURE_NOT_FOUND = 400
    INVALID_JSON = 402
    INVALID_REQUEST_FIELDS = 403
    INACTIVE_RECIPIENT = 406
    JSON_REQUIRED = 409
    TOO_MANY_BATCH_MESSAGES = 410
    RATE_LIMIT_EXCEEDED = 429  # Postmark's legacy ErrorCode for HTTP 429
    FORBIDDEN_ATTACHMENT = 411
    STREAM_NOT_FOUND = 1235
    STREAM_NOT_SENDABLE = 1236
    SIGNATURE_QUERY = 500
    SIGNATURE_NOT_FOUND = 501
    SIGNATURE_EXISTS = 504
    DOMAIN_NOT_FOUND = 510
    DOMAIN_INVALID_FIELDS = 511
    DOMAIN_EXISTS = 512
    DOMAIN_NAME_REQUIRED = 514
    DOMAIN_NAME_TOO_LONG = 515
    DOMAIN_NAME_INVALID = 516
    FROM_EMAIL_REQUIRED = 520
    FIELD_TOO_LONG = 521
    INVALID_EMAIL_OR_DOMAIN = 522
    SERVER_QUERY = 600
    SERVER_NAME_EXISTS = 603
    INVALID_HOOK_URL = 606
    INVALID_COLOR = 607
    SERVER_NAME_INVALID = 608
    SERVER_NO_DATA = 609
    INVALID_SPAM_THRESHOLD = 611
    INVALID_TRACK_LINKS = 612
    INVALID_DELIVERY_TYPE = 613
    MESSAGE_QUERY = 700
    MESSAGE_NOT_FOUND = 701
    BOUNCE_QUERY = 1000
    BOUNCE_NOT_FOUND = 1001
    BOUNCE_ID_REQUIRED = 1002
    BOUNCE_CANNOT_ACTIVATE = 1003
    STREAM_NOT_FOUND_BY_ID = 1226
    SMTP_DISABLED = 1460


@dataclass(frozen=True, slots=True)
class BounceTypeInfo:
    """What Postmark says about one bounce type."""

    type: str
    code: int
    name: str
    description: str
    deactivates: bool
    can_activate: bool


class BounceType(StrEnum):
    """The 22 bounce types Postmark knows."""

    HARD_BOUNCE = "HardBounce"
    TRANSIENT = "Transient"
    UNSUBSCRIBE = "Unsubscribe"
    SUBSCRIBE = "Subscribe"
    AUTO_RESPONDER = "AutoResponder"
    ADDRESS_CHANGE = "AddressChange"
    DNS_ERROR = "DnsError"
    SPAM_NOTIFICATION = "SpamNotification"
    OPEN_RELAY_TEST = "OpenRelayTest"
    UNKNOWN = "Unknown"
    SOFT_BOUNCE = "SoftBounce"
    VIRUS_NOTIFICATION = "VirusNotification"
    CHALLENGE_VERIFICATION = "ChallengeVerification"
    BAD_EMAIL_ADDRESS = "BadEmailAddress"
    SPAM_COMPLAINT = "SpamComplaint"
    MANUALLY_DEACTIVATED = "ManuallyDeactivated"
    UNCONFIRMED = "Unconfirmed"
    BLOCKED = "Blocked"
    SMTP_API_ERROR = "SMTPApiError"
    INBOUND_ERROR = "InboundError"
    DMARC_POLICY = "DMARCPolicy"
    TEMPLATE_RENDERING_FAILED = "TemplateRenderingFailed"

    @property
    def info(self) -> BounceTypeInfo:
        return BOUNCE_TYPES[self]


def _bt(
    t: BounceType,
    code: int,
    name: str,
    description: str,
    *,
    deactivates: bool = False,
    can_activate: bool = False,
) -> tuple[BounceType, BounceTypeInfo]:
    return t, BounceTypeInfo(t.value, code, name, description, deactivates, can_activate)


BOUNCE_TYPES: dict[BounceType, BounceTypeInfo] = dict(
    [
        _bt(
            BounceType.HARD_BOUNCE,
            1,
            "Hard bounce",
            "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
            deactivates=True,
            can_activate=True,
        ),
        _bt(
            BounceType.TRANSIENT,
            2,
            "Message delayed",
            "The server could not temporarily deliver your message (ex: Message is delayed due to network troubles).",
        ),
        _bt(
            BounceType.UNSUBSCRIBE,
            16,
            "Unsubscribe request",
            "Unsubscribe or Remove request.",
            deactivates=True,
            can_activate=True,
        ),
        _bt(
            BounceType.SUBSCRIBE,
            32,
            "Subscribe request",
            "Subscribe request from someone wanting to get added to the mailing list.",
        ),
        _bt(
            BounceType.AUTO_RESPONDER,
            64,
            "Auto responder",
            'Automatic email responder (ex: "Out of Office" or "On Vacation").',
        ),
        _bt(
            BounceType.ADDRESS_CHANGE,
            128,
            "Address change",
            "The recipient has requested an address change.",
        ),
        _bt(BounceType.DNS_ERROR, 256, "DNS error", "A temporary DNS error."),
        _bt(
            BounceType.SPAM_NOTIFICATION,
            512,
            "Spam notification",
            "The message was delivered, but was either blocked by the user, or classified as spam, bulk mail, or had rejected content.",
        ),
        _bt(
            BounceType.OPEN_RELAY_TEST,
            1024,
            "Open relay test",
            "The NDR is actually a test email message to see if the mail server is an open relay.",
        ),
        _bt(BounceType.UNKNOWN, 2048, "Unknown", "Unable to classify the NDR."),
        _bt(
            BounceType.SOFT_BOUNCE,
            4096,
            "Soft bounce/Undeliverable",
            "Unable to temporarily deliver message (i.e. mailbox full, account disabled, exceeds quota, out of disk space).",
        ),
        _bt(
            BounceType.VIRUS_NOTIFICATION,
            8192,
            "Virus notification",
            "The bounce is actually a virus notification warning about a virus/code infected message.",
        ),
        _bt(
            BounceType.CHALLENGE_VERIFICATION,
            16384,
            "Spam challenge verification",
            "The bounce is a challenge asking for verification you actually sent the email. Typcial challenges are made by Spam Arrest, or MailFrontier Matador.",
        ),
        _bt(
            BounceType.BAD_EMAIL_ADDRESS,
            100000,
            "Invalid email address",
            "The address is not a valid email address.",
            deactivates=True,
            can_activate=True,
        ),
        _bt(
            BounceType.SPAM_COMPLAINT,
            100001,
            "Spam complaint",
            "The subscriber explicitly marked this message as spam.",
            deactivates=True,
            can_activate=False,
        ),
        _bt(
            BounceType.MANUALLY_DEACTIVATED,
            100002,
            "Manually deactivated",
            "The email was manually deactivated.",
            deactivates=True,
            can_activate=True,
        ),
        _bt(
            BounceType.UNCONFIRMED,
            100003,
            "Registration not confirmed",
            "The subscriber has not clicked on the confirmation link upon registration or import.",
        ),
        _bt(
            BounceType.BLOCKED,
            100006,
            "ISP block",
            "Blocked from this ISP due to content or blacklisting.",
        ),
        _bt(
            BounceType.SMTP_API_ERROR,
            100007,
            "SMTP API error",
            "An error occurred while accepting an email through the SMTP API.",
        ),
        _bt(
            BounceType.INBOUND_ERROR,
            100008,
            "Processing failed",
            "Unable to deliver inbound message to destination inbound hook.",
        ),
        _bt(
            BounceType.DMARC_POLICY,
            100009,
            "DMARC Policy",
            "Email rejected due DMARC Policy.",
        ),
        _bt(
            BounceType.TEMPLATE_RENDERING_FAILED,
            100010,
            "Template rendering failed",
            "An error occurred while attempting to render your template.",
        ),
    ]
)

BOUNCE_TYPE_BY_NAME: dict[str, BounceType] = {t.value.lower(): t for t in BounceType}


class MessageStatus(StrEnum):
    """Outbound message status as the Messages API shows it."""

    QUEUED = "Queued"
    SENT = "Sent"
    PROCESSED = "Processed"


class MessageEventType(StrEnum):
    """`MessageEvents[].Type` in a message's details."""

    DELIVERED = "Delivered"
    TRANSIENT = "Transient"
    BOUNCED = "Bounced"
    OPENED = "Opened"
    LINK_CLICKED = "LinkClicked"
    SUBSCRIPTION_CHANGED = "SubscriptionChanged"


class WebhookTrigger(StrEnum):
    """The triggers of `/webhooks`; also the RecordType of the payloads they send."""

    OPEN = "Open"
    CLICK = "Click"
    DELIVERY = "Delivery"
    BOUNCE = "Bounce"
    SPAM_COMPLAINT = "SpamComplaint"
    SUBSCRIPTION_CHANGE = "SubscriptionChange"


class StreamType(StrEnum):
    TRANSACTIONAL = "Transactional"
    INBOUND = "Inbound"
    BROADCASTS = "Broadcasts"


class TrackLinks(StrEnum):
    NONE = "None"
    HTML_AND_TEXT = "HtmlAndText"
    HTML_ONLY = "HtmlOnly"
    TEXT_ONLY = "TextOnly"


class DeliveryType(StrEnum):
    LIVE = "Live"
    SANDBOX = "Sandbox"


SERVER_COLORS = (
    "purple",
    "blue",
    "turquoise",
    "green",
    "red",
    "yellow",
    "grey",
    "orange",
)


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "HardBounce"
    SPAM_COMPLAINT = "SpamComplaint"
    MANUAL_SUPPRESSION = "ManualSuppression"


class SuppressionOrigin(StrEnum):
    RECIPIENT = "Recipient"
    CUSTOMER = "Customer"
    ADMIN = "Admin"
