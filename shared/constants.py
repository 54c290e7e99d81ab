"""Postmark's names and numbers: headers, error codes, bounce types, limits."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

SERVER_TOKEN_HEADER = "X-Postmark-Server-Token"  # noqa: S105 - a header name
ACCOUNT_TOKEN_HEADER = "X-Postmark-Account-Token"  # noqa: S105 - a header name
API_ERROR_CODE_HEADER = "X-PM-ApiErrorCode"
IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
# Account tokens every reader of old examples knows: no service starts with one of these.
KNOWN_ACCOUNT_TOKENS = frozenset({"change-me-account-token", "change-me", "changeme", "account-token", "secret"})
MIN_ACCOUNT_TOKEN_CHARS = 16


def account_token_problem(token: str) -> str | None:
    """Why `token` may not be the account token (None when it may)."""
    if not token.strip():
        return "ACCOUNT_TOKEN is not set"
    if token.strip().lower() in KNOWN_ACCOUNT_TOKENS:
        return "ACCOUNT_TOKEN is a well-known example value"
    if len(token.strip()) < MIN_ACCOUNT_TOKEN_CHARS:
        return f"ACCOUNT_TOKEN is shorter than {MIN_ACCOUNT_TOKEN_CHARS} characters"
    return None


MAX_RECIPIENTS_PER_FIELD = 50
MAX_BATCH_MESSAGES = 500
# Scheduled sending (beyond Postmark): `SendAt` / `X-PM-Send-At` may be at most this far ahead.
MAX_SCHEDULE_DAYS = 30
SEND_AT_HEADER = "X-PM-Send-At"
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MAX_BATCH_BYTES = 50 * 1024 * 1024
MAX_SUBJECT_CHARS = 2000
MAX_TAG_CHARS = 1000
MAX_FROM_CHARS = 255
# Postmark counts recipients (50 per field), not characters: 50 addresses of up to 320 characters
# with display names fit in this many.
MAX_ADDRESS_FIELD_CHARS = 20_000
MAX_BODY_BYTES = 5 * 1024 * 1024
MAX_METADATA_KEYS = 10
MAX_METADATA_KEY_CHARS = 20
MAX_METADATA_VALUE_CHARS = 80
# Postmark documents no limit for these; these keep one request's work and storage bounded.
MAX_CUSTOM_HEADERS = 100
MAX_HEADER_VALUE_CHARS = 2_000
MAX_ENVELOPE_RECIPIENTS = 1_000
MAX_ENVELOPE_ADDRESS_CHARS = 1_000
MAX_PAGE_COUNT = 500
MAX_PAGE_WINDOW = 10_000
MAX_TEMPLATES_PER_SERVER = 100
MAX_TEMPLATE_NAME_CHARS = 255
MAX_TEMPLATE_ALIAS_CHARS = 255

DEFAULT_MESSAGE_STREAM = "outbound"
DEFAULT_BROADCAST_STREAM = "broadcast"
MAX_BULK_BYTES = 50 * 1024 * 1024
# Postmark documents no entry limit for the Bulk API; these bound one request's memory and checking work. The
# test token needs no account and only previews, so it gets far smaller caps, its bytes checked before parsing.
MAX_BULK_ENTRIES = 10_000
MAX_BULK_TEST_ENTRIES = 50
MAX_BULK_TEST_BYTES = 1024 * 1024
# Public tracking URLs (open pixel, click redirect, unsubscribe) are served under this path; it is
# exempt from the API's token auth, path and query lower-casing and JSON-only bodies.
TRACKING_PATH_PREFIX = "/t/"
INBOUND_MESSAGE_STREAM = "inbound"

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
    MULTIPLE_ERRORS = 11
    BULK_NOT_FOUND = 12
    BULK_PAGINATION_KEY_INVALID = 13
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
    DKIM_RENEWAL_SCHEDULED = 505
    SIGNATURE_ALREADY_CONFIRMED = 506
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
    TEMPLATE_PUSH_SERVER_NOT_FOUND = 601
    DUPLICATE_INBOUND_DOMAIN = 602
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
    INBOUND_CANNOT_BYPASS = 702
    INBOUND_CANNOT_RETRY = 703
    TRIGGER_QUERY = 800
    TRIGGER_NO_DATA = 809
    INBOUND_RULE_EXISTS = 810
    INBOUND_RULE_CANNOT_REMOVE = 811
    INBOUND_RULE_NOT_FOUND = 812
    INBOUND_RULE_INVALID = 813
    BOUNCE_QUERY = 1000
    BOUNCE_NOT_FOUND = 1001
    BOUNCE_ID_REQUIRED = 1002
    BOUNCE_CANNOT_ACTIVATE = 1003
    STATS_DATE_INVALID = 900
    STREAMS_NO_ACCESS = 1220
    STREAM_TYPE_INVALID = 1221
    STREAM_ID_REQUIRED = 1222
    STREAM_NAME_REQUIRED = 1223
    STREAM_NAME_TOO_LONG = 1224
    STREAM_LIMIT_REACHED = 1225
    TEMPLATE_QUERY = 1100
    TEMPLATE_NOT_FOUND = 1101
    TEMPLATE_LIMIT_EXCEEDED = 1105
    TEMPLATE_NO_DATA = 1109
    TEMPLATE_FIELD_REQUIRED = 1120
    TEMPLATE_FIELD_TOO_LARGE = 1121
    TEMPLATE_FIELD_INVALID = 1122
    TEMPLATE_FIELD_NOT_ALLOWED = 1123
    TEMPLATE_NOTHING_TO_PUSH = 1124
    TEMPLATE_TYPE_MISMATCH = 1125
    LAYOUT_IN_USE = 1130
    LAYOUT_PLACEHOLDER = 1131
    STREAM_NOT_FOUND_BY_ID = 1226
    STREAM_ID_INVALID = 1227
    STREAM_ONE_INBOUND = 1228
    STREAM_DEFAULT_CANNOT_ARCHIVE = 1229
    STREAM_ID_EXISTS = 1230
    STREAM_DESCRIPTION_TOO_LONG = 1231
    STREAM_CANNOT_UNARCHIVE = 1232
    STREAM_ID_PM_PREFIX = 1233
    STREAM_DESCRIPTION_HTML = 1234
    STREAM_ID_RESERVED = 1237
    STREAM_CUSTOM_UNSUBSCRIBE_FORBIDDEN = 1238
    STREAM_UNSUBSCRIBE_NOT_SUPPORTED = 1239
    STREAM_UNSUBSCRIBE_INVALID = 1240
    STREAM_CANNOT_ARCHIVE = 1241
    DATA_REMOVAL_INVALID = 1300
    DATA_REMOVAL_NOT_FOUND = 1301
    WEBHOOK_STREAM_ARCHIVED = 1350
    WEBHOOK_INBOUND_STREAM = 1351
    WEBHOOK_NOT_FOUND = 1352
    WEBHOOK_URL_INVALID = 1354
    WEBHOOK_STREAM_CANNOT_CHANGE = 1357
    WEBHOOK_HEADER_INVALID = 1358
    WEBHOOK_VALUE_INVALID = 1361
    TOKEN_SCOPE_FORBIDDEN = 1470  # Postgate's own: the token's scope (send or read) does not allow this request
    SUPPRESSION_QUERY_INVALID = 1400  # Postmark's "invalid count"; its code for a bad query value of /dump
    SUPPRESSION_REASON_INVALID = 1404
    SUPPRESSION_ORIGIN_INVALID = 1405
    SUPPRESSION_NO_BODY = 1409
    SUPPRESSION_TOO_MANY = 1410
    SMTP_DISABLED = 1460
    TLS_REPORT_NOT_FOUND = 1471  # beyond Postmark: GET /delivery/tls-reports/{id}


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
    SCHEDULED = "Scheduled"
    """Beyond Postmark: accepted with a `SendAt` still ahead; becomes Queued when the worker releases it."""
    CANCELLED = "Cancelled"
    """Beyond Postmark: a scheduled message cancelled before its release; it never leaves."""


class MessageEventType(StrEnum):
    """`MessageEvents[].Type` in a message's details."""

    DELIVERED = "Delivered"
    TRANSIENT = "Transient"
    BOUNCED = "Bounced"
    OPENED = "Opened"
    LINK_CLICKED = "LinkClicked"
    SUBSCRIPTION_CHANGED = "SubscriptionChanged"


class InboundStatus(StrEnum):
    """Where a received message is: Postmark's inbound statuses, as the API shows them."""

    QUEUED = "Queued"
    PROCESSED = "Processed"
    BLOCKED = "Blocked"
    FAILED = "Failed"
    SCHEDULED = "Scheduled"


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


class TokenScope(StrEnum):
    """What an API token may do (beyond Postmark): everything, only send (the /email endpoints and
    SMTP), or only read (GET)."""

    FULL = "full"
    SEND = "send"
    READ = "read"


class TrackLinks(StrEnum):
    NONE = "None"
    HTML_AND_TEXT = "HtmlAndText"
    HTML_ONLY = "HtmlOnly"
    TEXT_ONLY = "TextOnly"


class UnsubscribeHandlingType(StrEnum):
    """`SubscriptionManagementConfiguration.UnsubscribeHandlingType` of a message stream."""

    NONE = "None"
    POSTMARK = "Postmark"
    CUSTOM = "Custom"


class ClickLocation(StrEnum):
    """Which part of a message a tracked link was clicked in."""

    HTML = "HTML"
    TEXT = "Text"


class Platform(StrEnum):
    """Where an open or a click came from, as Postmark classifies it."""

    DESKTOP = "Desktop"
    MOBILE = "Mobile"
    WEBMAIL = "WebMail"
    UNKNOWN = "Unknown"


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


class DkimUpdateStatus(StrEnum):
    """`DKIMUpdateStatus` of a domain: Pending while a new key waits to be published in DNS."""

    REGULAR = "Regular"
    PENDING = "Pending"


class DataRemovalStatus(StrEnum):
    """`Status` of a data removal request."""

    PENDING = "Pending"
    DONE = "Done"


class SuppressionReason(StrEnum):
    HARD_BOUNCE = "HardBounce"
    SPAM_COMPLAINT = "SpamComplaint"
    MANUAL_SUPPRESSION = "ManualSuppression"


class SuppressionOrigin(StrEnum):
    RECIPIENT = "Recipient"
    CUSTOMER = "Customer"
    ADMIN = "Admin"


class BulkStatus(StrEnum):
    """Where a Bulk API request is: nothing released yet, being released, every message released or failed."""

    ACCEPTED = "Accepted"
    PROCESSING = "Processing"
    COMPLETED = "Completed"


class TemplateType(StrEnum):
    """A Standard template is sent; a Layout wraps Standard templates around its `{{{ @content }}}`."""

    STANDARD = "Standard"
    LAYOUT = "Layout"


class HealthStatus(StrEnum):
    """The verdict of one sender-health check (`GET /domains/{id}/health`)."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    WARN = "warn"
    FAIL = "fail"
