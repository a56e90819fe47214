"""Sending what is queued: claim a message, write it in the recipient's language, send it
over SMTP, record it, once.

A message is claimed atomically (pending → sending, with a lease), so several instances
never send the same message; SMTP failures back off exponentially with jitter, and after
`max_attempts` the message is dead-lettered with the reason (and can be re-driven). Due
timers (digests, reminders, nudges, outcome requests) fire in the same loop.
"""

import asyncio
import hashlib
import hmac
import json
import logging
import random
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosmtplib
import httpx
import pymongo
from pymongo import ReturnDocument

from c2f_notifications import messages, timers
from c2f_notifications.config import Settings
from c2f_notifications.i18n import Words
from c2f_notifications.messages import ESSENTIAL
from c2f_notifications.store import CLUSTERS, COMPANIES, ERASURES, EVENTS, OUTGOING, RECIPIENTS, WEBHOOKS
from c2f_shared import links
from c2f_shared.events import MessageDeadLettered, NotificationSent
from c2f_shared.service import Runtime, UnitOfWork
from c2f_shared.service.logs import log_context
from c2f_shared.service.waker import Waker

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
DB_WAIT_S = 10.0
MAX_WAITS = 20  # a recipient still unknown after this many checks (~1.5 h) is given up on
_NOTIFICATION_NS = uuid.UUID("2a7c9d51-8a60-4d6e-b0a4-c2f000000006")


class Delivery:
    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self._runtime = runtime
        self._settings = settings
        self._waker = Waker()
        secret = settings.link_secret.get_secret_value() if settings.link_secret else None
        if secret is None:
            log.warning("no C2F_LINK_SECRET: links in mails will not work in other services")
        self.link_secret = secret or secrets.token_urlsafe(32)

    def wake(self) -> None:
        self._waker.wake()

    async def ensure_indexes(self) -> None:
        await self._runtime.db[OUTGOING].create_index([("status", 1), ("next_attempt_at", 1)])
        await self._runtime.db[OUTGOING].create_index("recipient_id")
        await self._runtime.db["timers"].create_index([("status", 1), ("due_at", 1)])
        await self._runtime.db["digest_items"].create_index([("recipient_id", 1), ("digest", 1)])
        await self._runtime.db[ERASURES].create_index("participants")

    async def run_forever(self, idle_poll: float = 1.0) -> None:
        while True:
            try:
                # Bounded: on the embedded database a plain update can wait for a transaction a
                # killed instance left open; the next round tries again.
                with pymongo.timeout(DB_WAIT_S):
                    await self._release_expired_leases()
                await timers.fire_due(self._runtime)
                while await self.deliver_one():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery loop failed; retrying")
            await self._waker.sleep(idle_poll)

    async def _release_expired_leases(self) -> None:
        await self._runtime.db[OUTGOING].update_many(
            {"status": "sending", "lease_until": {"$lt": datetime.now(UTC)}},
            {"$set": {"status": "pending"}},
        )

    async def deliver_one(self) -> bool:
        """Send the next due message; False when nothing is due."""
        outgoing = self._runtime.db[OUTGOING]
        now = datetime.now(UTC)
        msg = await outgoing.find_one_and_update(
            {"status": "pending", "next_attempt_at": {"$lte": now}},
            {"$set": {"status": "sending", "lease_until": now + LEASE}},
            sort=[("next_attempt_at", 1)],
            return_document=ReturnDocument.AFTER,
        )
        if msg is None:
            return False
        with log_context(correlation_id=msg.get("correlation_id", ""), outgoing=msg["_id"]):
            await self._deliver(msg)
        return True

    async def _deliver(self, msg: dict[str, Any]) -> None:
        if msg.get("channel") == "webhook":
            await self._post_webhook(msg)
            return
        db = self._runtime.db
        me = await db[RECIPIENTS].find_one({"_id": msg["recipient_id"]})
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
        event = await db[EVENTS].find_one({"_id": data.get("event_id") or me["event_id"]})
        if event is None:
            await self._wait_for_recipient(msg)  # the event's facts have not reached us yet
            return
        ctx = messages.Context(
            words=Words(me.get("language", "en")),
            recipient=me,
            event=event,
            party=await self._parties(_mentioned(data) | {me["_id"]}),
            link=lambda action, subject: self._link(action, subject, me["_id"]),
            sender=self._settings.mail_from,
        )
        message = messages.compose(msg["kind"], data, ctx)
        optional = msg["kind"] not in ESSENTIAL
        email = messages.render(
            message,
            ctx,
            to=f"{me['name']} <{me['email']}>",
            message_id=str(uuid.uuid5(_NOTIFICATION_NS, msg["_id"])),
            preferences_url=self._page("preferences", "*", me["_id"]),
            unsubscribe_url=self._page("unsubscribe", msg["kind"], me["_id"]) if optional else None,
        )
        try:
            await aiosmtplib.send(
                email,
                hostname=self._settings.smtp_host,
                port=self._settings.smtp_port,
                username=self._settings.smtp_username,
                password=self._settings.smtp_password,
                start_tls=self._settings.smtp_starttls,
                timeout=15,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            await self._failed(msg, f"{type(error).__name__}: {error}")
            return
        await self._sent(msg, message.subject)

    async def _post_webhook(self, msg: dict[str, Any]) -> None:
        """POST the fact to the cluster's endpoint, signed: X-C2F-Signature is
        sha256=HMAC-SHA256(key, "<X-C2F-Timestamp>.<body>") with the key the cluster holds."""
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
        stamp = str(int(time.time()))
        mac = hmac.new(hook["secret"].encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-C2F-Delivery": msg["_id"],
            "X-C2F-Timestamp": stamp,
            "X-C2F-Signature": f"sha256={mac}",
        }
        try:
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(hook["url"], content=body, headers=headers)
            response.raise_for_status()
        except httpx.HTTPError as error:
            await self._failed(msg, f"webhook: {type(error).__name__}: {error}")
            return
        await self._sent(msg, f"webhook {response.status_code}")

    async def _parties(self, ids: set[str]) -> Callable[[str], messages.Party]:
        """How each participant mentioned may be shown: its company's (or cluster's) name and
        country, its attendee's name and e-mail only if the attendee agreed, and its company's
        contact persons who agreed to be shown to matched companies."""
        db = self._runtime.db
        people = {p["_id"]: p async for p in db[RECIPIENTS].find({"_id": {"$in": list(ids)}})}
        companies = {
            c["_id"]: c
            async for c in db[COMPANIES].find(
                {"_id": {"$in": [p.get("company_id") for p in people.values()]}}
            )
        }
        clusters = {
            c["_id"]: c
            async for c in db[CLUSTERS].find({"_id": {"$in": [p.get("cluster_id") for p in people.values()]}})
        }

        def party(pid: str) -> messages.Party:
            person = people.get(pid)
            if person is None:
                return messages.Party(name="—")
            owner = companies.get(person.get("company_id")) or clusters.get(person.get("cluster_id")) or {}
            shared = bool(person.get("consent_share_contact"))
            return messages.Party(
                name=owner.get("name", "—"),
                country=owner.get("country"),
                attendee=person["name"] if shared else None,
                email=person["email"] if shared else None,
                contacts=[(c["name"], c["email"]) for c in owner.get("contacts", [])],
            )

        return party

    def _link(self, action: str, subject: str, participant_id: str) -> str:
        token = links.sign(self.link_secret, action, subject, participant_id)
        return f"{self._settings.public_matching_url}/act/{token}"

    def _page(self, action: str, subject: str, participant_id: str) -> str:
        token = links.sign(self.link_secret, action, subject, participant_id, valid_days=365)
        return f"{self._settings.public_notifications_url}/{action}/{token}"

    async def _drop(self, msg: dict[str, Any], reason: str) -> None:
        await self._runtime.db[OUTGOING].update_one(
            {"_id": msg["_id"]}, {"$set": {"status": "cancelled", "reason": reason}}
        )

    async def _sent(self, msg: dict[str, Any], subject: str) -> None:
        sent_at = datetime.now(UTC)

        async def work(uow: UnitOfWork) -> None:
            await uow.db[OUTGOING].update_one(
                {"_id": msg["_id"]},
                {
                    "$set": {"status": "sent", "sent_at": sent_at, "subject": subject},
                    "$inc": {"attempts": 1},
                    "$push": {"tries": {"at": sent_at, "result": "sent"}},
                },
                session=uow.session,
            )
            if msg.get("channel") == "webhook":
                return  # reports count e-mails to people
            notification_id = str(uuid.uuid5(_NOTIFICATION_NS, msg["_id"]))
            uow.emit(
                NotificationSent(
                    notification_id=notification_id,
                    kind=msg["kind"],
                    recipient_participant_id=msg["recipient_id"],
                    about_id=msg["about_id"],
                    sent_at=sent_at,
                ),
                event_id=notification_id,
            )

        await self._runtime.transact(work, msg.get("correlation_id"))
        log.info("sent")

    async def _failed(self, msg: dict[str, Any], reason: str) -> None:
        attempts = msg["attempts"] + 1
        now = datetime.now(UTC)
        tried = {"at": now, "result": reason}
        if attempts >= self._settings.max_attempts:
            log.error("giving up after %d attempts: %s", attempts, reason)
            await self._dead_letter(msg, attempts, tried, reason)
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
            {"_id": msg["_id"]}, {"$set": update, "$push": {"tries": tried}}
        )

    async def _dead_letter(
        self, msg: dict[str, Any], attempts: int, tried: dict[str, Any], reason: str
    ) -> None:
        """Set aside, visible to operators (GET /outgoing?status=failed, the dead-letter topic),
        and re-drivable (POST /outgoing/{id}/redrive)."""
        dead_letter_id = str(uuid.uuid5(_NOTIFICATION_NS, f"dead:{msg['_id']}:{attempts}"))
        final = f"{attempts} attempts failed; last: {reason}"

        async def work(uow: UnitOfWork) -> None:
            await uow.db[OUTGOING].update_one(
                {"_id": msg["_id"]},
                {
                    "$set": {"status": "failed", "reason": final, "attempts": attempts},
                    "$push": {"tries": tried},
                },
                session=uow.session,
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

    async def _wait_for_recipient(self, msg: dict[str, Any]) -> None:
        # The participant's registration may simply not have reached us yet.
        waits = msg.get("waits", 0) + 1
        if waits > MAX_WAITS:
            update: dict[str, Any] = {"status": "failed", "reason": "recipient unknown"}
        else:
            update = {
                "status": "pending",
                "waits": waits,
                "next_attempt_at": datetime.now(UTC) + timedelta(seconds=min(2**waits, 600)),
            }
        await self._runtime.db[OUTGOING].update_one({"_id": msg["_id"]}, {"$set": update})


def _mentioned(data: dict[str, Any]) -> set[str]:
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
