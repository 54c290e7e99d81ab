"""Who may do what in the console: the capabilities, the roles that hold them, and the one table
that says which capability each console route needs.

Every console router is included with the `authorize` dependency (`console/web.py`), which looks
up the route in `RULES` before the page runs. A route that matches no rule is refused to everyone,
Owners included, so a new page cannot be forgotten: it does not work until it is given a rule
(tests/console/test_access.py also checks that every route has one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from api_service.models import AccountRole, ServerRole


class Capability(StrEnum):
    PUBLIC = "public"  # signing in, invitations, single sign-on, the console's 404
    SECOND_FACTOR = "second-factor"  # the password is checked, the second factor is asked
    SET_UP_TWO_FACTOR = "set-up-two-factor"  # one's own 2FA: also while the account requires enrolment
    SIGNED_IN = "signed-in"  # one's own account, the server list (filtered)
    VIEW_SERVER = "view-server"  # a server's activity, bounces, inbound mail and stats
    READ_BODIES = "read-bodies"  # message bodies and raw sources
    EDIT_SERVER = "edit-server"  # settings (with the token), templates, streams, suppressions, webhooks
    MANAGE_ACCOUNT = "manage-account"  # servers (create, colour, delete), domains, sender signatures
    MANAGE_USERS = "manage-users"  # users, roles, invitations, the 2FA policy


class Pending(StrEnum):
    """A session that is not fully signed in yet."""

    SECOND_FACTOR = "second-factor"
    ENROL = "enrol"


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is signed in, what they may do, and the CSRF token their forms must carry."""

    username: str
    csrf_token: str
    role: AccountRole = AccountRole.OWNER
    server_roles: Mapping[int, ServerRole] = field(default_factory=dict)
    can_read_bodies: bool = True
    pending: Pending | None = None
    session_digest: str = ""

    def can(self, capability: Capability | str, server_id: int | None = None) -> bool:
        return allows(self, Capability(capability), server_id)

    def can_see_server(self, server_id: int) -> bool:
        return allows(self, Capability.VIEW_SERVER, server_id)

    @property
    def sees_every_server(self) -> bool:
        return self.role in (AccountRole.OWNER, AccountRole.ADMIN)


def allows(identity: Identity, capability: Capability, server_id: int | None = None) -> bool:
    if capability in (Capability.PUBLIC, Capability.SECOND_FACTOR, Capability.SET_UP_TWO_FACTOR, Capability.SIGNED_IN):
        return True
    if identity.role is AccountRole.OWNER:
        return True
    if capability is Capability.MANAGE_USERS:
        return False
    if identity.role is AccountRole.ADMIN:
        return True
    if capability is Capability.MANAGE_ACCOUNT or server_id is None:
        return False
    role = identity.server_roles.get(server_id)
    if role is ServerRole.EDITOR:
        return True
    if role is ServerRole.VIEWER:
        return capability is Capability.VIEW_SERVER or (capability is Capability.READ_BODIES and identity.can_read_bodies)
    return False


_VIEW_PAGES = "(activity|activity/rows|bounces|stats|inbound|inbound/rows)"
# (methods, path after /console as FastAPI writes it, capability): the first match wins.
RULES: tuple[tuple[frozenset[str], re.Pattern[str], Capability], ...] = tuple(
    (frozenset(methods.split()), re.compile(pattern), capability)
    for methods, pattern, capability in (
        ("GET POST", r"/sign-in", Capability.PUBLIC),
        ("POST", r"/sign-out", Capability.PUBLIC),
        ("GET POST", r"/sign-in/second-factor(/.*)?", Capability.SECOND_FACTOR),
        ("GET POST", r"/invitations/\{token\}", Capability.PUBLIC),
        ("GET", r"/sso/(start|callback)", Capability.PUBLIC),
        ("GET POST", r"/account/two-factor(/.*)?", Capability.SET_UP_TWO_FACTOR),
        ("GET POST", r"/account(/.*)?", Capability.SIGNED_IN),
        ("GET POST", r"/users(/.*)?", Capability.MANAGE_USERS),
        ("GET", r"", Capability.SIGNED_IN),
        ("GET", r"/servers", Capability.SIGNED_IN),
        ("POST", r"/servers", Capability.MANAGE_ACCOUNT),
        ("GET POST", r"/servers/\{server_id\}/(color|delete)", Capability.MANAGE_ACCOUNT),
        ("GET", r"/servers/\{server_id\}", Capability.VIEW_SERVER),
        ("GET", rf"/servers/\{{server_id\}}/{_VIEW_PAGES}", Capability.VIEW_SERVER),
        ("GET", r"/servers/\{server_id\}/(messages|inbound)/\{message_id\}", Capability.VIEW_SERVER),
        ("GET", r"/servers/\{server_id\}/(messages|inbound)/\{message_id\}/(html|raw)", Capability.READ_BODIES),
        # Everything else of a server (its settings, templates, streams, suppressions, webhooks,
        # inbound rules, and every change, reactivating a bounce or retrying inbound mail included).
        ("GET POST", r"/servers/\{server_id\}/.+", Capability.EDIT_SERVER),
        ("GET POST", r"/(domains|senders)(/.*)?", Capability.MANAGE_ACCOUNT),
        # The account's delivery state, sender health, TLS reports and the audit log: Admins and Owners.
        ("GET POST", r"/(delivery|health|tls-reports|audit)(/.*)?", Capability.MANAGE_ACCOUNT),
        # Account tokens act for the whole account, users included: Owners only.
        ("GET POST", r"/account-tokens(/.*)?", Capability.MANAGE_USERS),
        ("GET POST PUT PATCH DELETE", r"/\{rest(:path)?\}", Capability.PUBLIC),
    )
)


def capability_of(method: str, path: str) -> Capability | None:
    """The capability a console route needs (its path after /console, with `{params}`); None: no rule."""
    for methods, pattern, capability in RULES:
        if method in methods and pattern.fullmatch(path):
            return capability
    return None
