"""Delivery: claim due recipients, send them, and record what each SMTP reply means for the
recipient, its message and its webhooks (the queue through `delivery.queue`, the rest through the
packages that own those records)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api_service.bounces.verp import return_path
from api_service.config import Settings
from api_service.core.offload import cpu_bound
from api_service.delivery import queue, shaping
from api_service.delivery.outcomes import Outcomes, recorder
from api_service.delivery.policy import Policy, PolicySource, SourceIp
from api_service.delivery.queue import Claimed
from api_service.delivery.transport import Attempt, Channel, Reply, Transport
from api_service.domains import dkim
from api_service.domains import service as domains
from api_service.mail.addresses import domain_of
from api_service.messages import service as messages
from api_service.models import Message, Server
from api_service.servers import service as servers_service
from api_service.tracking.personalise import Personalisation, per_recipient, personalise
from shared.constants import DeliveryType
from shared.schemas.delivery import DeliveryDestination, SourceIpInfo, WarmupUse

log = logging.getLogger("postgate.delivery")
SANDBOX_REPLY = Reply(250, "Sandboxed: accepted, not delivered")


_policies: dict[tuple[str, str], PolicySource] = {}


def policy_of(settings: Settings) -> Policy:
    """The delivery policy in force (DELIVERY_POLICY_FILE, read again when it changes)."""
    key = (settings.delivery_policy_file, settings.source_ips)
    source = _policies.get(key)
    if source is None:
        source = _policies[key] = PolicySource(settings.delivery_policy_file, source_ips=settings.source_ips)
    return source.current()


def slot_lease_seconds(settings: Settings) -> float:
    """How long a dead worker's connection slots keep their destination's room (at most a minute)."""
    return max(1.0, min(settings.delivery_lease_seconds, 60.0))


Group = tuple[tuple[uuid.UUID, str, str], list[Claimed]]
REQUEUE_SECONDS = 0.0  # a refused connection's recipients are due again at once: suspension bounds the rounds
WARMUP_CHUNK = 10  # warm-up allowance a lane takes from the shared count at once
WARMUP_WAITING = "450 4.7.0 Every source IP of the pool has sent its warm-up allowance for {destination} today; waiting for tomorrow"


async def deliver_batch(*, sessionmaker: async_sessionmaker[AsyncSession], transport: Transport, settings: Settings) -> int:
    """Claim what the destinations have room for and deliver it; returns how many recipients were claimed.

    The claim takes due recipients destination by destination, as many as each one's rate buckets
    and free connection slots allow (shared by every worker in PostgreSQL), so a throttled
    destination never holds up another. Each destination's recipients go out over its lanes: a
    lane is one connection (reused from the last batch when one is idle) that carries message
    after message, one recipient per transaction.

    Each group's outcome is recorded as soon as its SMTP transaction ends, in a short transaction
    shared with the groups that ended meanwhile (group commit, see `recorder`), and the claim's
    leases are extended while sends are in flight, so a worker that dies leaves for the next one
    only what it had not finished: a kill -9 sends again at most the groups in flight at that
    instant, and a relay slower than the lease is not sent to twice.
    """
    policy = policy_of(settings)
    slot_lease = slot_lease_seconds(settings)
    lease = settings.delivery_lease_seconds
    await transport.close_channels(transport.expire_idle(policy.idle_seconds))
    async with sessionmaker() as session, session.begin():
        await queue.keep_slots(session=session, holder=transport.holder, keep=transport.slots(), lease_seconds=slot_lease)
        # More than a batch: rows another worker claims meanwhile are made up for from the rest.
        candidates = await queue.open_candidates(session=session, limit=2 * settings.delivery_batch_size + 10, holder=transport.holder)
    if not candidates:
        # Nothing to send anywhere: an idle connection would only wait for its timeout.
        await transport.close_channels(transport.expire_idle(0.0))
        return 0
    relay = transport.relay is not None
    # A domain seen for the first time (or last resolved in the other mode) is looked up now.
    unknown = sorted({c.domain for c in candidates if c.destination is None or c.destination.startswith("relay:") != relay})
    resolved = dict(zip(unknown, await asyncio.gather(*(transport.destination_of(d, policy=policy) for d in unknown)), strict=True))
    wanted, quotas = queue.by_destination(
        [dataclasses.replace(c, destination=None) if c.domain in resolved else c for c in candidates],
        resolved,
        limit=settings.delivery_batch_size,
    )
    async with sessionmaker() as session, session.begin():
        await queue.save_domains(session=session, destinations=resolved)
        admitted = await queue.admit(
            session=session,
            wanted=wanted,
            quotas=quotas,
            policy=policy,
            holder=transport.holder,
            idle=transport.idle_counts(),
            lease_seconds=lease,
            slot_lease_seconds=slot_lease,
            max_lanes=settings.delivery_concurrency,
        )
    lanes: list[tuple[queue.Admitted, list[Channel]]] = []
    surplus: list[Channel] = []
    stranded: list[Claimed] = []
    for entry in admitted:
        channels = transport.take_idle(entry.destination, entry.reuse)
        surplus += transport.take_idle(entry.destination, entry.close)
        channels += [Channel(destination=entry.destination, slot=slot) for slot in entry.new_slots]
        if entry.items and channels:
            lanes.append((entry, channels))
        else:
            surplus += channels
            stranded += entry.items  # no connection to carry them (not expected): straight back
    if surplus or stranded:  # the destination allows fewer connections now: close ours beyond them
        await transport.close_channels(surplus)
        async with sessionmaker() as session, session.begin():
            await queue.release_slots(session=session, ids=[c.slot for c in surplus])
            await queue.requeue(session=session, items=[(i, "") for i in stranded], at=datetime.now(UTC))
    claimed = [item for entry, _ in lanes for item in entry.items]
    if not claimed:
        return 0
    for _, channels in lanes:
        transport.busy.update(channels)
    batch = Batch(settings=settings, policy=policy, transport=transport, sessionmaker=sessionmaker)
    try:
        async with heartbeat(sessionmaker=sessionmaker, items=claimed, lease_seconds=lease, slots=transport.slots, slot_lease=slot_lease):
            await batch.load(claimed)
            try:
                await asyncio.gather(*(batch.destination(entry, channels) for entry, channels in lanes))
            finally:
                await batch.outcomes.close()
    finally:
        # A destination whose queue this batch emptied has no use for its connections: they close
        # now rather than after the idle timeout.
        drained = len(candidates) <= settings.delivery_batch_size
        closed: list[uuid.UUID] = []
        for entry, channels in lanes:
            done = drained and len(entry.items) >= len(wanted.get(entry.destination, ()))
            for channel in channels:
                transport.busy.discard(channel)
                if channel.open and not done:
                    transport.put_idle(channel)
                else:
                    await channel.quit()
                    closed.append(channel.slot)
        await batch.finish(closed_slots=closed)
    return len(claimed)


class Batch:
    """One claim's sends: the messages and keys they need, the lanes per destination, and what the
    destinations answered (learning, and recipients put back without spending an attempt)."""

    def __init__(self, *, settings: Settings, policy: Policy, transport: Transport, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.settings, self.policy, self.transport, self.sessionmaker = settings, policy, transport, sessionmaker
        self.outcomes = recorder(sessionmaker=sessionmaker, settings=settings)
        self.limit = asyncio.Semaphore(settings.delivery_concurrency)
        self.feedback: dict[str, queue.Feedback] = defaultdict(queue.Feedback)
        self.requeue: dict[str, list[tuple[Claimed, str]]] = defaultdict(list)
        self.loaded: dict[uuid.UUID, Message] = {}
        self.servers: dict[int, Server] = {}
        self.senders: dict[str, domains.SendingDomain] = {}
        self.shared: dict[uuid.UUID, bytes] = {}
        self.sharers: Counter[uuid.UUID] = Counter()
        self.bad_ips: dict[str, set[str]] = defaultdict(set)
        self.warm: dict[tuple[str, str], int] = {}
        self.warm_day: dict[tuple[str, str], date] = {}
        self.warm_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self.spent: set[tuple[str, str]] = set()
        self.waiting: list[tuple[Claimed, str, datetime]] = []

    async def load(self, claimed: list[Claimed]) -> None:
        async with self.sessionmaker() as session:
            self.loaded = await messages.get_messages(session=session, ids={c.message_id for c in claimed})
            self.servers = await servers_service.get_servers(session=session, ids={m.server_id for m in self.loaded.values()})
            self.senders = await domains.sending_domains(session=session, domains={domain_of(m.from_email) for m in self.loaded.values()})
        # One recipient per SMTP transaction: the return path is signed for its recipient (bounces.verp),
        # so a DSN counts only for the recipient it was sent about. A message whose copies do not
        # differ per recipient is still signed once: that copy serves each of its groups and is dropped
        # with the last of them; a personalised copy is made for its one send and released once sent,
        # so a batch holds at most one per send in flight, not one per recipient.
        self.sharers = Counter(c.message_id for c in claimed if (m := self.loaded.get(c.message_id)) is not None and not per_recipient(m))

    def envelope_domain(self, message: Message) -> str:
        """The From's own verified return-path domain when it has one: SPF then passes for a domain
        aligned with the From (DMARC), not only for Postgate's."""
        sender = self.senders.get(domain_of(message.from_email))
        return (sender.return_path_domain if sender is not None else "") or self.settings.return_path_domain

    async def copy_for(self, message: Message, server: Server, alone: str, recipient: str) -> bytes:
        data = None if alone else self.shared.get(message.id)
        if data is None:
            sender = self.senders.get(domain_of(message.from_email))
            context = Personalisation(
                secret=server.tracking_secret,
                # The From domain's own verified tracking host, so links in its mail show its name.
                base_url=(sender.tracking_base_url if sender is not None else "") or self.settings.tracking_url,
                return_path_domain=self.envelope_domain(message),
            )
            # Off the loop for a big message: DKIM over 10 MB takes a third of a second.
            data = await cpu_bound(len(message.raw_mime), prepare, message, recipient, self.senders, context)
            if not alone:
                self.shared[message.id] = data
        return data

    def _release(self, message_id: uuid.UUID, alone: str) -> None:
        if not alone:
            self.sharers[message_id] -= 1
            if self.sharers[message_id] <= 0:
                self.shared.pop(message_id, None)

    async def destination(self, entry: queue.Admitted, channels: list[Channel]) -> None:
        """The destination's recipients over its lanes; what no lane could send goes back to the queue."""
        groups: dict[tuple[uuid.UUID, str, str], list[Claimed]] = defaultdict(list)
        for item in entry.items:
            groups[(item.message_id, domain_of(item.email), item.email)].append(item)

        def pool_of(group: Group) -> tuple[str, ...]:
            message = self.loaded.get(group[0][0])
            if message is None:
                return ()
            return tuple(ip.address for ip in self.policy.pool_for(server_id=message.server_id, stream=message.message_stream))

        work: deque[Group] = deque(sorted(groups.items(), key=pool_of))
        returned: set[tuple[uuid.UUID, str, str]] = set()
        await asyncio.gather(*(self.lane(entry, channel, work, returned) for channel in channels))
        refused = Reply(421, "4.4.5 The destination refused the connection; waiting")
        for (message_id, _, _), items in work:  # every lane was refused: these wait, without spending an attempt
            message = self.loaded.get(message_id)
            if message is None:
                continue
            if not per_recipient(message):
                self._release(message_id, "")
            if self._past_horizon(message):  # waited long enough: recorded, and soft-bounced, as any temporary failure
                attempt = Attempt(replies={i.email: refused for i in items})
                await self.outcomes.write(Outcomes(message=message, server=self.servers[message.server_id], items=items, attempt=attempt))
            else:
                self.requeue[entry.destination] += [(item, _text(refused)) for item in items]

    def _past_horizon(self, message: Message) -> bool:
        # Counted from the release of a scheduled message, not from its acceptance.
        started = max(message.created_at, message.send_at) if message.send_at is not None else message.created_at
        return datetime.now(UTC) >= started + timedelta(seconds=self.settings.delivery_retry_horizon_seconds)

    async def lane(self, entry: queue.Admitted, channel: Channel, work: deque[Group], returned: set[tuple[uuid.UUID, str, str]]) -> None:
        """One connection's worth of the destination's work, group after group, until none is left or
        the destination pushes back."""
        feedback = self.feedback[entry.destination]
        settings = self.settings
        while work:
            key, items = work.popleft()
            message_id, domain, recipient = key
            message = self.loaded.get(message_id)
            if message is None:  # deleted with its server meanwhile (its rows went with it)
                continue
            server = self.servers[message.server_id]
            alone = recipient if per_recipient(message) else ""
            async with self.limit:
                try:
                    if message.sandboxed or server.delivery_type == DeliveryType.SANDBOX:
                        attempt: Attempt | None = Attempt(replies={i.email: SANDBOX_REPLY for i in items}, server="sandbox")
                    else:
                        attempt = await self._from_pool(
                            entry,
                            channel,
                            message,
                            sender=return_path(
                                message_id=message_id, recipient=recipient, domain=self.envelope_domain(message), secret=settings.verp_key
                            ),
                            domain=domain,
                            recipients=[i.email for i in items],
                            data=await self.copy_for(message, server, alone, items[0].email),
                        )
                finally:
                    self._release(message_id, alone)
                if attempt is None:  # warm-up: every IP of the pool has sent its allowance for today
                    waiting = WARMUP_WAITING.format(destination=entry.destination)
                    if not self._past_horizon(message):
                        tomorrow = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
                        self.waiting += [(item, waiting, tomorrow) for item in items]
                        continue
                    code, _, text = waiting.partition(" ")
                    attempt = Attempt(replies={i.email: Reply(int(code), text) for i in items})
                refused = _refused(attempt)
                if refused is not None and key not in returned:
                    # The connection itself was refused (too many of them): nothing was tried for
                    # the recipients; another lane takes them, and this one closes.
                    feedback.throttled.add(refused)
                    feedback.throttle_replies += 1
                    feedback.last_reply = _text(attempt.greeting)
                    returned.add(key)
                    if not alone:
                        self.sharers[message_id] += 1
                    work.appendleft((key, items))
                    channel.drop()
                    return
                pushed_back = self._pushed_back(entry, message, items, attempt, feedback)
                rest = [i for i in items if i not in pushed_back]
                feedback.delivered += sum(1 for i in rest if 200 <= attempt.replies.get(i.email, Reply(451, "")).code < 300)
                # Still inside the limit: a group counts as in flight until its outcome is
                # recorded, which is what bounds the mail sent twice after a crash.
                if rest:
                    await self.outcomes.write(Outcomes(message=message, server=server, items=rest, attempt=attempt))
                if pushed_back:
                    await channel.quit()
                    return

    async def _from_pool(
        self, entry: queue.Admitted, channel: Channel, message: Message, *, sender: str, domain: str, recipients: list[str], data: bytes
    ) -> Attempt | None:
        """Send from an IP of the message's pool (the channel's own while it is usable): an IP the
        destination refuses or lists is left for the rest of the batch and the next one tried; an
        IP in warm-up sends only its allowance of the day. None: no IP has allowance left today."""

        async def send() -> Attempt:
            return await self.transport.send(
                sender=sender,
                domain=domain,
                recipients=recipients,
                data=data,
                channel=channel,
                per_connection=entry.limits.messages_per_connection,
            )

        pool = self.policy.pool_for(server_id=message.server_id, stream=message.message_stream)
        if not pool:
            if channel.source is not None:
                await channel.quit()
                channel.source = None
            return await send()
        bad = self.bad_ips[entry.destination]
        order = sorted(pool, key=lambda ip: (ip != channel.source, ip.address in bad))
        last: Attempt | None = None
        for ip in order:
            if ip.address in bad and last is not None:
                continue
            if not await self._warm(ip, entry.destination):
                continue
            if channel.source != ip:
                await channel.quit()
                channel.source = ip
            attempt = await send()
            if not shaping.ip_refused(attempt.greeting, list(attempt.replies.values())):
                return attempt
            log.warning(
                "%s refused source IP %s: %s; trying another of its pool",
                entry.destination,
                ip.address,
                _text(attempt.greeting or next(iter(attempt.replies.values()), None)),
            )
            bad.add(ip.address)
            await channel.quit()
            last = attempt
        return last

    async def _warm(self, ip: SourceIp, destination: str) -> bool:
        """One message of `ip`'s warm-up allowance for `destination` today (taken from the shared
        count a few at a time); True when the IP is not in warm-up."""
        today = datetime.now(UTC).date()
        allowance = self.policy.allowance(ip=ip, provider=destination, today=today)
        if allowance is None:
            return True
        key = (ip.address, destination)
        async with self.warm_locks[key]:  # the lanes of a destination share what one of them took
            if self.warm.get(key, 0) <= 0 and key not in self.spent:
                async with self.sessionmaker() as session, session.begin():
                    taken = await queue.take_warmup(
                        session=session, source_ip=ip.address, provider=destination, day=today, want=WARMUP_CHUNK, allowance=allowance
                    )
                self.warm[key] = self.warm.get(key, 0) + taken
                self.warm_day[key] = today
                if not taken:
                    self.spent.add(key)
            if self.warm.get(key, 0) <= 0:
                return False
            self.warm[key] -= 1
            return True

    def _pushed_back(
        self, entry: queue.Admitted, message: Message, items: list[Claimed], attempt: Attempt, feedback: queue.Feedback
    ) -> list[Claimed]:
        """Recipients whose reply is the destination throttling us: they wait for it, without spending
        an attempt (unless the message is past the retry horizon: then the reply is recorded)."""
        back = []
        for item in items:
            reply = attempt.replies.get(item.email)
            if reply is None:
                continue
            kind = shaping.throttle_of(reply.code, reply.message)
            if kind is None and reply == attempt.greeting:
                kind = shaping.throttle_of(reply.code, reply.message, greeting=True)
            if kind is None:
                continue
            feedback.throttled.add(kind)
            feedback.throttle_replies += 1
            feedback.last_reply = _text(reply)
            hint = shaping.retry_hint(reply.message)
            if hint is not None:
                feedback.hint = max(feedback.hint or 0.0, hint)
            if not self._past_horizon(message):
                back.append(item)
                self.requeue[entry.destination].append((item, _text(reply)))
        return back

    async def finish(self, *, closed_slots: list[uuid.UUID]) -> None:
        """Release the slots of closed connections, learn from the replies, put back what waits."""
        now = datetime.now(UTC)
        try:
            async with self.sessionmaker() as session, session.begin():
                await queue.release_slots(session=session, ids=closed_slots)
                for key in sorted(set(self.feedback) | set(self.requeue)):
                    feedback = self.feedback.get(key, queue.Feedback())
                    until = await queue.learn(session=session, key=key, feedback=feedback, policy=self.policy, now=now)
                    if self.requeue.get(key):
                        at = until if until is not None and until > now else now + timedelta(seconds=REQUEUE_SECONDS)
                        await queue.requeue(session=session, items=self.requeue[key], at=at)
                for at in sorted({at for _, _, at in self.waiting}):
                    await queue.requeue(session=session, items=[(i, text) for i, text, when in self.waiting if when == at], at=at)
                for (address, provider), left in sorted(self.warm.items()):
                    if left > 0:  # taken ahead and not sent: back to the day's allowance
                        await queue.give_back_warmup(
                            session=session, source_ip=address, provider=provider, day=self.warm_day[(address, provider)], count=left
                        )
        except Exception:  # what was not put back returns when its lease expires (one attempt spent)
            log.exception("recording what the destinations answered failed")


def _refused(attempt: Attempt) -> shaping.Throttle | None:
    """A throttling greeting, with no server deciding for any recipient (all replies temporary)."""
    if attempt.greeting is None or any(not 400 <= r.code < 500 for r in attempt.replies.values()):
        return None
    return shaping.throttle_of(attempt.greeting.code, attempt.greeting.message, greeting=True)


def _text(reply: Reply | None) -> str:
    return "" if reply is None else f"{reply.code} {reply.message}".strip()


@asynccontextmanager
async def heartbeat(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    items: list[Claimed],
    lease_seconds: float,
    slots: Callable[[], list[uuid.UUID]] | None = None,
    slot_lease: float = 60.0,
) -> AsyncIterator[None]:
    """While the block runs, extend the lease of the claimed rows not yet recorded (and of this
    worker's connection slots), every third of the shorter lease, so that no other worker takes
    over a send that is still in flight, or a connection that is still open."""

    async def beat() -> None:
        while True:
            await asyncio.sleep(min(lease_seconds, slot_lease) / 3)
            try:
                async with sessionmaker() as session, session.begin():
                    await queue.extend_leases(session=session, items=items, lease_seconds=lease_seconds)
                    if slots is not None:
                        await queue.extend_slots(session=session, ids=slots(), lease_seconds=slot_lease)
            except Exception as exc:  # the database is away: the leases may lapse, fencing keeps that safe
                log.warning("extending delivery leases failed: %s: %s", type(exc).__name__, exc)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def prepare(message: Message, recipient: str, senders: dict[str, domains.SendingDomain], context: Personalisation) -> bytes:
    """The bytes to send to `recipient`: personalised (when its copy differs), then DKIM-signed."""
    return sign(personalise(message.raw_mime, message=message, recipient=recipient, context=context), message, senders)


def sign(mime: bytes, message: Message, senders: dict[str, domains.SendingDomain]) -> bytes:
    sender = senders.get(domain_of(message.from_email))
    key = sender.key if sender is not None else None
    if key is None:
        return mime
    try:
        return dkim.sign(
            mime,
            domain=key.domain,
            selector=key.selector,
            private_pem=key.private_pem,
            ed25519_selector=key.ed25519_selector,
            ed25519_key=key.ed25519_key,
        )
    except Exception:  # a message dkimpy cannot sign is still delivered, unsigned
        log.exception("DKIM signing failed for %s", message.id)
        return mime


async def destinations(*, session: AsyncSession, settings: Settings) -> list[DeliveryDestination]:
    """Every destination the workers have met: its configured limits, the live ones, its state."""
    policy = policy_of(settings)
    now = datetime.now(UTC)
    queued = await queue.queued_by_destination(session=session)
    found = []
    for row, open_slots, domain_count in await queue.list_destinations(session=session):
        limits = policy.limits(row.key)
        if row.suspended_until is not None and row.suspended_until > now:
            state = "suspended"
        elif row.paused_until is not None and row.paused_until > now:
            state = "paused"
        elif open_slots >= row.connections:
            state = "full"
        elif row.connections < limits.connections or row.rate_factor < 1.0:
            state = "throttled"
        else:
            state = "open"
        found.append(
            DeliveryDestination(
                Destination=row.key,
                State=state,
                Connections=min(row.connections, limits.connections),
                MaxConnections=limits.connections,
                OpenConnections=open_slots,
                MessagesPerConnection=limits.messages_per_connection,
                PerSecond=limits.per_second,
                PerMinute=limits.per_minute,
                PerHour=limits.per_hour,
                RateFactor=row.rate_factor,
                SuspendedUntil=row.suspended_until,
                PausedUntil=row.paused_until,
                ThrottledAt=row.throttled_at,
                Delivered=row.delivered,
                Throttled=row.throttled,
                Queued=queued.get(row.key, 0),
                Domains=domain_count,
                LastReply=row.last_reply,
            )
        )
    return found


async def source_ips(*, session: AsyncSession, settings: Settings) -> list[SourceIpInfo]:
    """The pools' IPs: HELO, warm-up day, and what each sent to each destination today against its allowance."""
    policy = policy_of(settings)
    today = datetime.now(UTC).date()
    used = await queue.warmup_counts(session=session, day=today)
    found = []
    for pool, ips in sorted(policy.pools.items()):
        for ip in ips:
            found.append(
                SourceIpInfo(
                    Address=ip.address,
                    Pool=pool,
                    Helo=ip.helo or settings.helo_name,
                    WarmupSince=ip.warmup_since.isoformat() if ip.warmup_since else None,
                    WarmupDay=(today - ip.warmup_since).days + 1 if ip.warmup_since else None,
                    Today=[
                        WarmupUse(
                            Destination=provider, SentToday=sent, AllowanceToday=policy.allowance(ip=ip, provider=provider, today=today)
                        )
                        for address, provider, sent in used
                        if address == ip.address
                    ],
                )
            )
    return found
