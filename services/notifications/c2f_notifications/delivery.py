"""Sending what is queued: claim messages, write each in the recipient's language, send it
over SMTP, record it, once.

Due messages are claimed in batches, atomically (pending → sending, with a lease and a claim
token), so several instances never send the same message; an instance hands its claims to
`delivery_workers` senders, each with an SMTP connection it keeps open. What a batch's
messages mention (recipients, events, companies, clusters) is read once per batch. Sent
messages are recorded together, each by two ordered writes (`_mark_forever`): its
NotificationSent, from when on it counts as sent and is never sent again, then its status.
While the last mail is being recorded a sender goes on with the next (writes it, opens its SMTP
envelope) but hands over its content (DATA) only once the last one counts as sent, so a crash
can still double at most the one mail each sender has in hand (a normal stop lets each sender
finish and record the mail in hand first).
A long queue is claimed a lane at a time (`_claim`).
SMTP failures back off exponentially with jitter, and after `max_attempts` the message is
dead-lettered with the reason (and can be re-driven). Due timers (digests, reminders, nudges,
outcome requests) fire in the same loop.
"""

import asyncio
import contextlib
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import aiosmtplib
import httpx
import pymongo
from aiosmtplib.response import SMTPResponse
from aiosmtplib.typing import Default
from pymongo import UpdateOne

from c2f_notifications import messages, mime, timers, webhooks
from c2f_notifications.config import Settings
from c2f_notifications.i18n import Words
from c2f_notifications.messages import ESSENTIAL
from c2f_notifications.outgoing import LANES
from c2f_notifications.store import (
    CLUSTERS,
    COMPANIES,
    DIGEST_ITEMS,
    ERASURES,
    EVENTS,
    OUTGOING,
    RECIPIENTS,
    TIMERS,
    WEBHOOKS,
)
from c2f_shared import links
from c2f_shared.events import MessageDeadLettered, NotificationSent
from c2f_shared.service import Runtime, UnitOfWork, tracing
from c2f_shared.service.apart import update_apart
from c2f_shared.service.logs import log_context
from c2f_shared.service.unit_of_work import Emitted
from c2f_shared.service.waker import Waker

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
SMTP_TIMEOUT_S = 15.0
WEBHOOK_TIMEOUT_S = 10.0
# A claimed message is sent only while its lease has this much left: a send that started later
# could outlive the lease, and another instance could claim and send the message again.
LEASE_MARGIN = timedelta(seconds=2 * SMTP_TIMEOUT_S)
DB_WAIT_S = 10.0
# Idle, the delivery loop looks this often for what it was not woken for: messages and timers
# another instance stored and left (it died), leases that expired.
IDLE_POLL_S = 10.0
# Timers stored here are looked at within this long (not at every message queued, under load).
TIMERS_SLACK_S = 1.0
GIVE_BACK_S = 2.0  # stopping is bounded (the runtime waits 10 s for its tasks)
# Stopping: how long the senders may take to finish and record the mails in hand (an SMTP
# exchange takes milliseconds; a server that hangs longer is left, and that mail may go twice).
FINISH_S = 5.0
MAX_WAITS = 20  # a recipient still unknown after this many checks (~1.5 h) is given up on
_NOTIFICATION_NS = uuid.UUID("2a7c9d51-8a60-4d6e-b0a4-c2f000000006")

Doc = dict[str, Any]


@dataclass
class _Facts:
    """What the messages of one claimed batch mention, read with one query per collection."""

    people: dict[Any, Doc]
    events: dict[Any, Doc]
    companies: dict[Any, Doc]
    clusters: dict[Any, Doc]

    def party(self, pid: str) -> messages.Party:
        """How a participant may be shown: its company's (or cluster's) name and country, its
        attendee's name and e-mail only if the attendee agreed, and its company's contact
        persons who agreed to be shown to matched companies."""
        person = self.people.get(pid)
        if person is None:
            return messages.Party(name="—")
        owner = (
            self.companies.get(person.get("company_id")) or self.clusters.get(person.get("cluster_id")) or {}
        )
        shared = bool(person.get("consent_share_contact"))
        return messages.Party(
            name=owner.get("name", "—"),
            country=owner.get("country"),
            attendee=person["name"] if shared else None,
            email=person["email"] if shared else None,
            contacts=[(c["name"], c["email"]) for c in owner.get("contacts", [])],
        )


class _NotRecorded(Exception):
    """The mail a sender sent before could not be recorded: the one in hand waits too."""


class _GatedSmtp(aiosmtplib.SMTP):
    """An SMTP client that, given `before_data`, awaits what it returns before the DATA
    command: the envelope (MAIL FROM, RCPT TO) goes while the previous mail is still being
    recorded, the content only once that mail counts as sent."""

    before_data: Callable[[], Awaitable[None]] | None = None

    async def data(  # the library's signature
        self,
        message: str | bytes,
        /,
        *,
        timeout: float | Literal[Default.token] | None = Default.token,  # noqa: ASYNC109
    ) -> SMTPResponse:
        gate, self.before_data = self.before_data, None
        if gate is not None:
            await gate()
        return await super().data(message, timeout=timeout)


class _Smtp:
    """One sender's SMTP connection: opened when first needed, kept between mails, opened
    afresh after a failure or when it has been idle for `smtp_idle_s`."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._client: _GatedSmtp | None = None
        self._used_at = 0.0

    async def send(self, mail: mime.Mail, before_data: Callable[[], Awaitable[None]] | None = None) -> None:
        """Send `mail`; with `before_data`, its content goes only once what that returns is
        done (an error there abandons the mail and its connection)."""
        now = time.monotonic()
        if self._client is not None and (
            not self._client.is_connected or now - self._used_at > self._settings.smtp_idle_s
        ):
            self.close()
        if self._client is None:
            client = _GatedSmtp(
                hostname=self._settings.smtp_host,
                port=self._settings.smtp_port,
                username=self._settings.smtp_username,
                password=self._settings.smtp_password,
                start_tls=self._settings.smtp_starttls,
                timeout=SMTP_TIMEOUT_S,
            )
            try:
                await client.connect()
            except BaseException:
                client.close()
                raise
            self._client = client
        self._client.before_data = before_data
        try:
            await self._client.sendmail(
                mail.sender,
                mail.recipients,
                mail.data,
                mail_options=["SMTPUTF8"] if mail.utf8 else None,
                timeout=SMTP_TIMEOUT_S,
            )
        except BaseException:
            # Whatever state the session is in (a refusal, a dropped or timed-out connection),
            # the next mail starts on a new one.
            self.close()
            raise
        self._used_at = time.monotonic()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


_NEVER = float("inf")
TIMER_HORIZON_S = 60.0  # how far ahead the loop looks for the next timer (and looks again)


def _unix(at: datetime) -> float:
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()


@dataclass
class _Due:
    """When the delivery loop next has work: the next timer, the next message (Unix times)."""

    timers: float = 0.0
    messages: float = 0.0

    def everything_now(self) -> None:
        self.timers = self.messages = 0.0


@dataclass
class _Mark:
    """A message sent and to be recorded. `stored`: what makes it count as sent is stored (an
    e-mail's NotificationSent; a webhook's mark); `done`: the message is marked sent too."""

    msg: Doc
    subject: str
    sent_at: datetime
    stored: "asyncio.Future[None]"
    done: "asyncio.Future[None]"


class _Stage:
    """Marks waiting for one kind of write, written together."""

    def __init__(self) -> None:
        self._waiting: list[_Mark] = []
        self._ready = asyncio.Event()

    def put(self, mark: _Mark) -> None:
        self._waiting.append(mark)
        self._ready.set()

    async def write_forever(self, write: Callable[[list[_Mark]], Awaitable[None]]) -> None:
        """`write` all that waits, again; a failure is each mark's (its sender hears of it)."""
        while not _stopping():
            await self._ready.wait()
            self._ready.clear()
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    await write(batch)
                except asyncio.CancelledError:
                    for each in batch:
                        each.stored.cancel()
                        each.done.cancel()
                    raise
                except Exception as error:  # noqa: BLE001 - each sender hears of it
                    for each in batch:
                        for future in (each.stored, each.done):
                            if not future.done():
                                future.set_exception(error)
        raise asyncio.CancelledError


@dataclass
class _Sender:
    """One sender: its SMTP connection, the senders' HTTP client for webhooks, and the mark of
    the message it sent last."""

    smtp: _Smtp
    http: httpx.AsyncClient
    last: _Mark | None = None

    async def recorded(self, fully: bool = False) -> None:
        """Wait until the message sent last counts as sent (`fully`: and is marked sent);
        _NotRecorded if that failed."""
        if (mark := self.last) is None:
            return
        try:
            await mark.stored
            if fully:
                await mark.done
        except Exception as error:
            self.last = None  # told once
            raise _NotRecorded(
                f"the message sent before ({mark.msg['_id']}) could not be recorded ({error!r}); both "
                "go again once their leases run out"
            ) from error


class Delivery:
    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self._runtime = runtime
        self._settings = settings
        self._waker = Waker()
        self._timers_changed = False
        # Claimed messages for the senders; None tells a sender to stop (the service stops).
        self._claimed: asyncio.Queue[tuple[Doc, _Facts] | None] = asyncio.Queue()
        self._closing = False
        self._held: list[Doc] = []  # claimed, taken by a sender as it stopped: to give back
        self._lane = 0  # the lane a claim from a backlog reads first
        self._marks = _Stage()  # sent: their facts to store
        self._statuses = _Stage()  # counted as sent: to mark sent
        keys = settings.link_secrets()
        if not keys:
            log.warning("no C2F_LINK_SECRET: links in mails will not work in other services")
        # Newest first: the first signs, every one verifies (links.py).
        self.link_secret: list[str] = keys or [secrets.token_urlsafe(32)]

    def wake(self) -> None:
        """Something may be due now (a message or a timer was stored, a message re-driven): look
        without waiting for the next poll."""
        self._timers_changed = True
        self._waker.wake()

    async def ensure_indexes(self) -> None:
        await self._runtime.db[OUTGOING].create_index([("status", 1), ("next_attempt_at", 1)])
        await self._runtime.db[OUTGOING].create_index([("status", 1), ("lane", 1), ("next_attempt_at", 1)])
        # Messages queued before there were lanes go in the first.
        await self._runtime.db[OUTGOING].update_many(
            {"status": {"$in": ["pending", "sending"]}, "lane": {"$exists": False}}, {"$set": {"lane": 0}}
        )
        await self._runtime.db[OUTGOING].create_index("recipient_id")
        await self._runtime.db[OUTGOING].create_index("claim", sparse=True)
        await self._runtime.db[TIMERS].create_index([("status", 1), ("due_at", 1)])
        await self._runtime.db[DIGEST_ITEMS].create_index([("recipient_id", 1), ("digest", 1)])
        await self._runtime.db[ERASURES].create_index("participants")

    async def run_forever(self, idle_poll: float = IDLE_POLL_S) -> None:
        """Claim due messages and fire due timers when woken (something was queued here) or when
        the next one falls due, and at least every `idle_poll` seconds (what another instance
        queued and left, leases that expired). Idle, the loop sleeps until the next due time."""
        self._claimed = asyncio.Queue()
        self._marks, self._statuses, self._held, self._closing = _Stage(), _Stage(), [], False
        # One HTTP client for every webhook: a client costs tens of milliseconds of CPU to
        # make (its TLS context), and it keeps connections alive between posts.
        http = httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_S)
        senders = [
            asyncio.create_task(self._send_forever(http), name=f"delivery-sender-{n}")
            for n in range(self._settings.delivery_workers)
        ]
        marks = asyncio.create_task(self._mark_forever(), name="delivery-marks")
        chores_at = claimed_at = 0.0
        gather, backlog = self._settings.delivery_gather_s, False
        due = _Due()
        try:
            while not _stopping():
                try:
                    # Each step bounded on its own: on the embedded database a plain update can
                    # wait for a transaction a killed instance left open; the next round tries again.
                    if time.monotonic() - chores_at >= idle_poll:
                        with pymongo.timeout(DB_WAIT_S):
                            await self._release_expired_leases()
                        chores_at = time.monotonic()
                        due.everything_now()
                    if due.timers <= time.time():
                        # A round of due timers at a time, with claims between (timers.fire_some).
                        fired, more = await timers.fire_some(self._runtime)
                        with pymongo.timeout(DB_WAIT_S):
                            due.timers = 0.0 if more else await self._next_timer()
                        if fired:  # what they queued is due now
                            due.messages = 0.0
                    # Claim only when the senders run short, so leases are not held idle
                    # and a burst of wake-ups makes one claim rather than many small ones.
                    short = self._claimed.qsize() <= self._settings.delivery_workers
                    if short and due.messages <= time.time():
                        if not backlog:  # caught up: let what trickles in gather a moment
                            await asyncio.sleep(gather - (time.monotonic() - claimed_at))
                        room = self._settings.delivery_batch - self._claimed.qsize()
                        claimed_at = time.monotonic()
                        with pymongo.timeout(DB_WAIT_S):
                            backlog = await self._claim(room, backlog) == room
                            if not backlog:
                                due.messages = await self._next_message()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("delivery loop failed; retrying")
                    due.timers = due.messages = time.time() + 1.0
                chores = time.time() + idle_poll - (time.monotonic() - chores_at)
                # With the senders' hands full, more is claimed when they wake the loop.
                claims = due.messages if self._claimed.qsize() <= self._settings.delivery_workers else _NEVER
                soonest = min(due.timers, claims, chores)
                if await self._waker.sleep(max(0.0, soonest - time.time())):
                    due.messages = 0.0  # woken: a message was queued, or the senders run short
                    if self._timers_changed:  # one may be due sooner: look within a second
                        self._timers_changed = False
                        due.timers = min(due.timers, time.time() + TIMERS_SLACK_S)
            raise asyncio.CancelledError
        finally:
            await self._finish(senders, marks)
            await self._give_back()
            await http.aclose()

    async def _finish(self, senders: list[asyncio.Task[None]], marks: asyncio.Task[None]) -> None:
        """Stopping: each sender finishes the message in hand and waits for it to be recorded
        (a mail the SMTP server accepted and not recorded would go again after a start), within
        FINISH_S; idle senders stop at once, and what is still claimed is given back."""
        self._closing = True
        for _ in senders:
            self._claimed.put_nowait(None)  # wakes a sender waiting for work
        _, late = await asyncio.wait(senders, timeout=FINISH_S)
        if late:
            log.warning("%d senders did not finish their mails within %s s", len(late), FINISH_S)
        for task in [*late, marks]:
            task.cancel()
        await asyncio.gather(*senders, marks, return_exceptions=True)

    async def _next_timer(self) -> float:
        """When the next pending timer falls due, or the lease of one an instance claimed and
        has not fired runs out (it was killed: the timer is fired here then); Unix time, the
        end of the horizon (TIMER_HORIZON_S) when there is none before."""
        timers = self._runtime.db[TIMERS]
        # Only those due within the horizon: the embedded database reads every timer a query
        # matches to sort them (thousands of digests due tomorrow), not just the first.
        horizon = datetime.now(UTC) + timedelta(seconds=TIMER_HORIZON_S)
        timer = await timers.find_one(
            {"status": "pending", "due_at": {"$lte": horizon}}, {"due_at": 1}, sort=[("due_at", 1)]
        )
        firing = await timers.find_one({"status": "firing"}, {"lease_until": 1}, sort=[("lease_until", 1)])
        return min(
            _unix(timer["due_at"]) if timer else horizon.timestamp(),
            _unix(firing["lease_until"]) if firing and firing.get("lease_until") else _NEVER,
        )

    async def _next_message(self) -> float:
        """When the next pending message falls due (its next attempt, after a failure)."""
        msg = await self._runtime.db[OUTGOING].find_one(
            {"status": "pending"}, {"next_attempt_at": 1}, sort=[("next_attempt_at", 1)]
        )
        return _unix(msg["next_attempt_at"]) if msg else _NEVER

    async def _give_back(self) -> None:
        """Stopping: the messages claimed but not yet sent are pending again at once, rather
        than when their leases expire (a restarted instance would wait for them)."""
        unsent, self._held = self._held, []
        while not self._claimed.empty():
            if (item := self._claimed.get_nowait()) is not None:
                unsent.append(item[0])
        if not unsent:
            return
        try:
            with pymongo.timeout(GIVE_BACK_S):
                # By id, and only while it still carries the claim this instance made.
                await self._runtime.db[OUTGOING].bulk_write(
                    [
                        UpdateOne(
                            {"_id": m["_id"], "claim": m["claim"], "status": "sending"},
                            {"$set": {"status": "pending"}, "$unset": {"claim": ""}},
                        )
                        for m in unsent
                    ],
                    ordered=False,
                )
        except Exception as error:  # noqa: BLE001 - their leases will expire
            log.warning(
                "could not give back %d claimed messages (%s); their leases will expire", len(unsent), error
            )

    async def _release_expired_leases(self) -> None:
        await update_apart(
            self._runtime.db[OUTGOING],
            {"status": "sending", "lease_until": {"$lt": datetime.now(UTC)}},
            {"$set": {"status": "pending"}, "$unset": {"claim": ""}},
        )

    async def _claim(self, room: int, backlog: bool = False) -> int:
        """Lease up to `room` due messages, oldest first, and hand them to the senders; returns
        how many. The ids are read, then leased in one write that only takes those still
        pending: another instance claiming at the same moment gets the others. Catching up on
        a `backlog`, the messages are read a lane at a time (outgoing.LANES), oldest first in
        each lane, the lanes in turn."""
        if room <= 0:
            return 0
        outgoing = self._runtime.db[OUTGOING]
        now = datetime.now(UTC)
        due_now = {"status": "pending", "next_attempt_at": {"$lte": now}}
        due: dict[Any, Doc] = {}
        for _ in range(LANES if backlog else 1):
            query = {**due_now, "lane": self._lane} if backlog else due_now
            if backlog:  # round robin: the next read, in this claim or the next, is the next lane's
                self._lane = (self._lane + 1) % LANES
            async for d in outgoing.find(query).sort("next_attempt_at", 1).limit(room - len(due)):
                due[d["_id"]] = d
            if len(due) == room:
                break
        if not due:
            return 0
        token = uuid.uuid4().hex
        lease = {"status": "sending", "lease_until": now + LEASE, "claim": token}
        leased = await update_apart(outgoing, {"status": "pending"}, {"$set": lease}, ids=list(due))
        if leased == len(due):
            claimed = [{**d, **lease} for d in due.values()]
        else:  # some were taken (or changed) meanwhile: ours are those that carry our token
            claimed = await outgoing.find({"claim": token, "status": "sending"}).to_list(None)
            claimed.sort(key=lambda d: d["next_attempt_at"])
        if done := await self._sent_before(claimed):
            claimed = [m for m in claimed if m["_id"] not in done]
        facts = await self._facts(claimed)
        for msg in claimed:
            self._claimed.put_nowait((msg, facts))
        return len(claimed) + len(done)

    async def _facts(self, claimed: list[Doc]) -> _Facts:
        """The recipients, the people they are told about, their companies and clusters, and
        the events of a batch of e-mails (webhooks need none)."""
        db = self._runtime.db
        emails = [m for m in claimed if m.get("channel") != "webhook"]
        ids = {m["recipient_id"] for m in emails}
        for m in emails:
            ids |= _mentioned(m.get("data") or {})
        people = await _by_id(db[RECIPIENTS], ids)
        event_ids = {
            (m.get("data") or {}).get("event_id") or people.get(m["recipient_id"], {}).get("event_id")
            for m in emails
        }
        events, companies, clusters = await asyncio.gather(
            _by_id(db[EVENTS], event_ids),
            _by_id(db[COMPANIES], {p.get("company_id") for p in people.values()}),
            _by_id(db[CLUSTERS], {p.get("cluster_id") for p in people.values()}),
        )
        return _Facts(people, events, companies, clusters)

    async def _send_forever(self, http: httpx.AsyncClient) -> None:
        """One sender: take the next claimed message, deliver it, again; its SMTP connection
        stays open between mails."""
        sender = _Sender(_Smtp(self._settings), http)
        try:
            while not _stopping():
                item = await self._claimed.get()
                if item is None or self._closing:  # stopping: what it took is given back
                    self._held += [item[0]] if item is not None else []
                    with contextlib.suppress(_NotRecorded):  # logged by the mark's callback
                        await sender.recorded(fully=True)
                    return
                msg, facts = item
                if self._claimed.qsize() < self._settings.delivery_workers:
                    self._waker.wake()  # running short: claim more
                with log_context(correlation_id=msg.get("correlation_id", ""), outgoing=msg["_id"]):
                    try:
                        await self._deliver(msg, facts, sender)
                    except asyncio.CancelledError:
                        raise
                    except _NotRecorded as error:
                        # This one stays claimed until its lease expires, then comes again.
                        log.error("not sent: %s", error)
                    except Exception:
                        # It stays claimed until its lease expires, then comes again.
                        log.exception("delivery failed; the message will be tried again")
            raise asyncio.CancelledError
        finally:
            sender.smtp.close()

    async def _deliver(self, msg: Doc, facts: _Facts, sender: _Sender) -> None:
        if msg["lease_until"] - datetime.now(UTC) < LEASE_MARGIN:
            # Waited too long behind others (a slow server): give it back rather than risk
            # sending it after another instance claimed it.
            await self._runtime.db[OUTGOING].update_one(
                {"_id": msg["_id"], "claim": msg["claim"], "status": "sending"},
                {"$set": {"status": "pending"}, "$unset": {"claim": ""}},
            )
            return
        if msg.get("channel") == "webhook":
            await self._post_webhook(msg, sender)
            return
        me = facts.people.get(msg["recipient_id"])
        if me is None:
            await self._wait_for_recipient(msg)
            return
        if me.get("status") == "withdrawn":
            await self._drop(msg, "the participant withdrew")
            return
        if msg["kind"] not in ESSENTIAL and msg["kind"] in me.get("muted", []):
            await self._drop(msg, "the recipient unsubscribed")
            return
        data = msg.get("data") or {}
        event = facts.events.get(data.get("event_id") or me["event_id"])
        if event is None:
            await self._wait_for_recipient(msg)  # the event's facts have not reached us yet
            return
        try:
            mail, subject = self._write(msg, data, me, event, facts)
        except Exception as error:  # it would fail the same way every time
            log.exception("the mail could not be written; dead-lettered")
            await self._dead_letter(
                msg, msg["attempts"] + 1, f"the mail could not be written: {type(error).__name__}: {error}"
            )
            return
        try:
            with tracing.span(
                "smtp send",
                msg.get("trace"),
                kind=tracing.SpanKind.CLIENT,
                attributes={"c2f.notification": msg["_id"], "c2f.kind": msg["kind"]},
            ):
                await sender.smtp.send(mail, before_data=sender.recorded)
        except (aiosmtplib.SMTPException, OSError) as error:
            await self._failed(msg, f"{type(error).__name__}: {error}")
            return
        sender.last = self._sent(msg, subject)

    def _write(self, msg: Doc, data: Doc, me: Doc, event: Doc, facts: _Facts) -> tuple[mime.Mail, str]:
        """The mail of message `msg` to `me`, and its subject."""
        ctx = messages.Context(
            words=Words(me.get("language", "en")),
            recipient=me,
            event=event,
            party=facts.party,
            link=lambda action, subject: self._link(action, subject, me["_id"]),
            sender=self._settings.mail_from,
        )
        message = messages.compose(msg["kind"], data, ctx)
        optional = msg["kind"] not in ESSENTIAL
        mail = messages.render(
            message,
            ctx,
            to=(me["name"], me["email"]),
            message_id=_notification_id(msg),
            preferences_url=self._page("preferences", "*", me["_id"]),
            unsubscribe_url=self._page("unsubscribe", msg["kind"], me["_id"]) if optional else None,
        )
        return mail, message.subject

    async def _post_webhook(self, msg: Doc, sender: _Sender) -> None:
        """POST the fact to the cluster's endpoint, signed with the key the cluster holds
        (Standard Webhooks: `webhooks.signed_headers`)."""
        hook = await self._runtime.db[WEBHOOKS].find_one({"_id": msg["cluster_id"]})
        if hook is None:
            await self._drop(msg, "the cluster removed its webhook")
            return
        body = json.dumps(
            {
                "id": msg["_id"],
                "kind": msg["kind"],
                "participant_id": msg["recipient_id"],
                "about_id": msg["about_id"],
                "event_id": msg.get("event_id"),
                "data": msg.get("data") or {},
            },
            default=str,
            separators=(",", ":"),
        ).encode()
        headers = {
            "Content-Type": "application/json",
            **webhooks.signed_headers(hook["secret"], msg["_id"], body),
        }
        await sender.recorded()
        try:
            with tracing.span(
                "webhook post",
                msg.get("trace"),
                kind=tracing.SpanKind.CLIENT,
                attributes={"c2f.notification": msg["_id"], "c2f.cluster_id": msg["cluster_id"]},
            ):
                response = await sender.http.post(hook["url"], content=body, headers=headers)
                response.raise_for_status()
        except httpx.HTTPError as error:
            await self._failed(msg, f"webhook: {type(error).__name__}: {error}")
            return
        sender.last = self._sent(msg, f"webhook {response.status_code}")

    def _link(self, action: str, subject: str, participant_id: str) -> str:
        token = links.sign(self.link_secret, action, subject, participant_id)
        return f"{self._settings.public_matching_url}/act/{token}"

    def _page(self, action: str, subject: str, participant_id: str) -> str:
        token = links.sign(self.link_secret, action, subject, participant_id, valid_days=365)
        return f"{self._settings.public_notifications_url}/{action}/{token}"

    async def _drop(self, msg: Doc, reason: str) -> None:
        await self._runtime.db[OUTGOING].update_one(
            {"_id": msg["_id"]}, {"$set": {"status": "cancelled", "reason": reason}, "$unset": {"claim": ""}}
        )

    def _sent(self, msg: Doc, subject: str) -> _Mark:
        """Have the message recorded as sent (`_mark_forever`). Senders that finish at the same
        moment share one mark."""
        loop = asyncio.get_running_loop()
        mark = _Mark(msg, subject, datetime.now(UTC), loop.create_future(), loop.create_future())
        mark.stored.add_done_callback(_told)  # a failure is told through `done`
        mark.done.add_done_callback(_log_recorded)  # in the message's log context
        self._marks.put(mark)
        return mark

    async def _mark_forever(self) -> None:
        """Record the senders' marks in two stages side by side, each writing all that waits
        together, again: the mails' facts (from then on a mail counts as sent), then the
        messages' status. So a fact waits for one write, not for the status write before it."""
        await asyncio.gather(
            self._marks.write_forever(self._store_facts), self._statuses.write_forever(self._mark_statuses)
        )

    async def _store_facts(self, batch: list[_Mark]) -> None:
        """Store the mails' NotificationSent facts, then hand the batch to the status stage.

        What was sent is recorded in two writes and no transaction, in this order: the facts
        into the outbox, then the messages as sent. A mail counts as sent once its fact is
        stored (`stored`: its sender may hand over its next mail then). Killed between the two
        writes, an instance leaves the facts stored and the messages claimed: once their leases
        expire, the claim finds their facts and marks them sent without sending them again
        (`_sent_before`). So no message is marked sent without its fact, none whose fact is
        stored goes again, and reporting counts each mail once. (In one transaction it took
        five round trips to the database, and each sender waited for it before it took the
        next message: about two thirds of its time.)"""
        facts = []
        for m in batch:
            if m.msg.get("channel") == "webhook":
                continue  # reports count e-mails to people
            notification_id = _notification_id(m.msg)
            with tracing.continued(m.msg.get("trace")):  # reporting's count joins the trace
                facts.append(
                    Emitted.of(
                        NotificationSent(
                            notification_id=notification_id,
                            kind=m.msg["kind"],
                            recipient_participant_id=m.msg["recipient_id"],
                            about_id=m.msg["about_id"],
                            sent_at=m.sent_at,
                        ),
                        producer=self._runtime.service,
                        event_id=notification_id,
                        # Each NotificationSent keeps its own message's correlation id.
                        correlation_id=m.msg.get("correlation_id") or str(uuid.uuid4()),
                    )
                )
        await self._runtime.outbox.add_now(facts)
        for m in batch:
            if m.msg.get("channel") != "webhook":
                m.stored.set_result(None)
            self._statuses.put(m)

    async def _mark_statuses(self, batch: list[_Mark]) -> None:
        await self._mark_as_sent([(m.msg, m.sent_at, m.subject, "sent") for m in batch])
        for m in batch:
            if not m.stored.done():  # a webhook's
                m.stored.set_result(None)
            m.done.set_result(None)

    async def _mark_as_sent(self, sent: list[tuple[Doc, datetime, str | None, str]]) -> None:
        """Mark messages sent: (message, when, subject, what the try says)."""
        await self._runtime.db[OUTGOING].bulk_write(
            [
                UpdateOne(
                    {"_id": msg["_id"]},
                    {
                        "$set": {"status": "sent", "sent_at": at, "subject": subject},
                        "$unset": {"claim": ""},
                        "$inc": {"attempts": 1},
                        "$push": {"tries": {"at": at, "result": result}},
                    },
                )
                for msg, at, subject, result in sent
            ],
            ordered=False,
        )

    async def _sent_before(self, claimed: list[Doc]) -> set[Any]:
        """The claimed e-mails whose NotificationSent is stored already (an instance was killed
        after storing it, before marking them sent): marked sent now, not sent again."""
        emails = {_notification_id(m): m for m in claimed if m.get("channel") != "webhook"}
        stored = await self._runtime.outbox.stored(list(emails))
        if not stored:
            return set()
        log.info("%d mails were sent and counted before a restart: marked sent, not sent again", len(stored))
        now = datetime.now(UTC)
        done = [emails[fact_id] for fact_id in stored]
        await self._mark_as_sent([(m, now, None, "sent (counted before a restart)") for m in done])
        return {m["_id"] for m in done}

    async def _failed(self, msg: Doc, reason: str) -> None:
        attempts = msg["attempts"] + 1
        now = datetime.now(UTC)
        tried = {"at": now, "result": reason}
        if attempts >= self._settings.max_attempts:
            log.error("giving up after %d attempts: %s", attempts, reason)
            await self._dead_letter(msg, attempts, f"{attempts} attempts failed; last: {reason}", tried)
            return
        delay = self._settings.retry_base_s * 2 ** (attempts - 1) * random.uniform(0.5, 1.5)
        update = {
            "status": "pending",
            "reason": reason,
            "attempts": attempts,
            "next_attempt_at": now + timedelta(seconds=delay),
        }
        log.warning("send failed (%s); retry in %.1fs", reason, delay)
        await self._runtime.db[OUTGOING].update_one(
            {"_id": msg["_id"]}, {"$set": update, "$unset": {"claim": ""}, "$push": {"tries": tried}}
        )

    async def _dead_letter(self, msg: Doc, attempts: int, final: str, tried: Doc | None = None) -> None:
        """Set aside, visible to operators (GET /outgoing?status=failed, the dead-letter topic),
        and re-drivable (POST /outgoing/{id}/redrive); `final`: why, `tried`: the last try
        (by default: now, for that reason)."""
        dead_letter_id = str(uuid.uuid5(_NOTIFICATION_NS, f"dead:{msg['_id']}:{attempts}"))
        tried = tried or {"at": datetime.now(UTC), "result": final}

        async def work(uow: UnitOfWork) -> None:
            await uow.db[OUTGOING].update_one(
                {"_id": msg["_id"]},
                {
                    "$set": {"status": "failed", "reason": final, "attempts": attempts},
                    "$unset": {"claim": ""},
                    "$push": {"tries": tried},
                },
            )
            uow.emit(
                MessageDeadLettered(
                    dead_letter_id=dead_letter_id,
                    service="notifications",
                    topic="smtp",
                    partition=-1,
                    offset=-1,
                    reason=final,
                    payload=msg["_id"],
                ),
                event_id=dead_letter_id,
            )

        await self._runtime.transact(work, msg.get("correlation_id"))

    async def _wait_for_recipient(self, msg: Doc) -> None:
        # The participant's registration may simply not have reached us yet.
        waits = msg.get("waits", 0) + 1
        if waits > MAX_WAITS:
            update: Doc = {"status": "failed", "reason": "recipient unknown"}
        else:
            update = {
                "status": "pending",
                "waits": waits,
                "next_attempt_at": datetime.now(UTC) + timedelta(seconds=min(2**waits, 600)),
            }
        await self._runtime.db[OUTGOING].update_one(
            {"_id": msg["_id"]}, {"$set": update, "$unset": {"claim": ""}}
        )


def _notification_id(msg: Doc) -> str:
    """The id of a mail's NotificationSent, and its Message-ID: derived from the message."""
    return str(uuid.uuid5(_NOTIFICATION_NS, msg["_id"]))


def _told(future: "asyncio.Future[None]") -> None:
    if not future.cancelled():
        future.exception()  # retrieved: the mark's `done` tells


def _log_recorded(done: "asyncio.Future[None]") -> None:
    if done.cancelled():
        return
    if (error := done.exception()) is not None:
        log.error("sent, but could not be recorded: it goes again once its lease runs out (%r)", error)
    else:
        log.info("sent")


def _stopping() -> bool:
    """Whether this task was asked to stop. The request stays counted even when a library
    swallowed its CancelledError (Python 3.11's asyncio.wait_for can, when what it waits for
    completes at the same moment), and a loop that went on would never let its service stop."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _mentioned(data: Doc) -> set[str]:
    """Every participant id a message's data names."""
    ids: set[str] = set()
    for key in ("parties",):
        ids.update(data.get(key) or [])
    if data.get("requester"):
        ids.add(data["requester"])
    for meeting in data.get("meetings", []):
        ids.update(meeting.get("parties") or [])
        if meeting.get("requester"):
            ids.add(meeting["requester"])
    for fact in data.get("items", []):
        ids.update(p["participant_id"] for p in fact["parties"])
    return ids


async def _by_id(collection: Any, ids: Iterable[Any]) -> dict[Any, Doc]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    return {d["_id"]: d async for d in collection.find({"_id": {"$in": wanted}})}
