"""All ORM models, imported in one place for Alembic."""

from api_service.models.account_token import AccountToken
from api_service.models.audit_event import AuditEvent
from api_service.models.base import Base
from api_service.models.bounce import Bounce
from api_service.models.bounce_dump import BounceDump
from api_service.models.bulk_request import BulkEntry, BulkRequest
from api_service.models.console_invitation import ConsoleInvitation
from api_service.models.console_oidc_login import ConsoleOidcLogin
from api_service.models.console_passkey import ConsolePasskey
from api_service.models.console_policy import ConsolePolicy
from api_service.models.console_recovery_code import ConsoleRecoveryCode
from api_service.models.console_server_role import ConsoleServerRole, ServerRole
from api_service.models.console_session import ConsoleSession
from api_service.models.console_sign_in_failure import ConsoleSignInFailure
from api_service.models.console_user import AccountRole, ConsoleUser
from api_service.models.data_removal import DataRemoval
from api_service.models.delivery_destination import DeliveryDestination
from api_service.models.delivery_domain import DeliveryDomain
from api_service.models.delivery_ip_day import DeliveryIpDay
from api_service.models.delivery_slot import DeliverySlot
from api_service.models.dmarc_report import DmarcReport, DmarcReportRow, ReceivedTlsReport
from api_service.models.domain import Domain
from api_service.models.idempotency_key import IdempotencyKey
from api_service.models.inbound_message import InboundMessage
from api_service.models.inbound_rule import InboundRule
from api_service.models.message import Message, MessageSource
from api_service.models.message_click import MessageClick
from api_service.models.message_event import MessageEvent
from api_service.models.message_open import MessageOpen
from api_service.models.message_recipient import MessageRecipient, RecipientStatus
from api_service.models.message_stream import MessageStream
from api_service.models.mta_sts_policy import MtaStsPolicy
from api_service.models.rate_limit_bucket import RateLimitBucket
from api_service.models.retired_tracking_key import RetiredTrackingKey
from api_service.models.sender_health import DomainHealth, SourceIpHealth
from api_service.models.sender_signature import SenderSignature
from api_service.models.server import Server
from api_service.models.server_token import ServerToken
from api_service.models.suppression import Suppression
from api_service.models.template import Template
from api_service.models.tls_report import TlsReport, TlsReportStatus
from api_service.models.tls_report_session import TlsReportSession
from api_service.models.webhook import Webhook
from api_service.models.webhook_delivery import WebhookDelivery, WebhookDeliveryStatus

__all__ = [
    "AccountRole",
    "AccountToken",
    "AuditEvent",
    "Base",
    "Bounce",
    "BounceDump",
    "BulkEntry",
    "BulkRequest",
    "ConsoleInvitation",
    "ConsoleOidcLogin",
    "ConsolePasskey",
    "ConsolePolicy",
    "ConsoleRecoveryCode",
    "ConsoleServerRole",
    "ConsoleSession",
    "ConsoleSignInFailure",
    "ConsoleUser",
    "DataRemoval",
    "DeliveryDestination",
    "DeliveryDomain",
    "DeliveryIpDay",
    "DeliverySlot",
    "DmarcReport",
    "DmarcReportRow",
    "Domain",
    "DomainHealth",
    "IdempotencyKey",
    "InboundMessage",
    "InboundRule",
    "Message",
    "MessageClick",
    "MessageEvent",
    "MessageOpen",
    "MessageRecipient",
    "MessageSource",
    "MessageStream",
    "MtaStsPolicy",
    "RateLimitBucket",
    "ReceivedTlsReport",
    "RecipientStatus",
    "RetiredTrackingKey",
    "SenderSignature",
    "Server",
    "ServerRole",
    "ServerToken",
    "SourceIpHealth",
    "Suppression",
    "Template",
    "TlsReport",
    "TlsReportSession",
    "TlsReportStatus",
    "Webhook",
    "WebhookDelivery",
    "WebhookDeliveryStatus",
]
