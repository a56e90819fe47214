"""Sending what is queued: claim a message, send it over SMTP, record it, once.

A message is claimed atomically (pending → sending, with a lease), so several
instances never send the same message; SMTP failures back off exponentially with
jitter, and after `max_attempts` the message is marked failed with the reason.
"""

import asyncio
import logging
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosmtplib
from pymongo import ReturnDocument

from c2f_notifications import messages
from c2f_notifications.config import Settings
from c2f_notifications.handlers import OUTGOING, RECIPIENTS
from c2f_shared.events import NotificationSent
from c2f_shared.service import Runtime, UnitOfWork
from c2f_shared.service.logs import log_context
from c2f_shared.service.waker import Waker

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=60)
MAX_WAITS = 20  # a recipient still unknown after this many checks (~1.5 h) is given up on
_NOTIFICATION_NS = uuid.UUID("2a7c9d51-8a60-4d6e-b0a4-c2f000000006")


class Delivery:
    def __init__(self, runtime: Runtime, settings: Settings) -> None:
        self._runtime = runtime
        self._settings = settings
        self._waker = Waker()

    def wake(self) -> None:
        self._waker.wake()

    async def ensure_indexes(self) -> None:
        await self._runtime.db[OUTGOING].create_index([("status", 1), ("next_attempt_at", 1)])
        await self._runtime.db[OUTGOING].create_index("recipient_id")

    async def run_forever(self, idle_poll: float = 1.0) -> None:
        while True:
            try:
                await self._release_expired_leases()
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
        recipients = self._runtime.db[RECIPIENTS]
        me = await recipients.find_one({"_id": msg["recipient_id"]})
        if me is None:
            await self._wait_for_recipient(msg)
            return
        fact = msg["fact"]
        other_id = next(
            p["participant_id"] for p in fact["parties"] if p["participant_id"] != msg["recipient_id"]
        )
        other = await recipients.find_one({"_id": other_id})
        subject, body = messages.match_suggestion(me, other, fact, msg["recipient_id"])
        email = messages.build_email(
            sender=self._settings.mail_from,
            to_name=me["name"],
            to_email=me["email"],
            subject=subject,
            body=body,
            message_id=str(uuid.uuid5(_NOTIFICATION_NS, msg["_id"])),
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
        await self._sent(msg)

    async def _sent(self, msg: dict[str, Any]) -> None:
        sent_at = datetime.now(UTC)

        async def work(uow: UnitOfWork) -> None:
            await uow.db[OUTGOING].update_one(
                {"_id": msg["_id"]},
                {"$set": {"status": "sent", "sent_at": sent_at}, "$inc": {"attempts": 1}},
                session=uow.session,
            )
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
        if attempts >= self._settings.max_attempts:
            update: dict[str, Any] = {"status": "failed", "reason": reason, "attempts": attempts}
            log.error("giving up after %d attempts: %s", attempts, reason)
        else:
            delay = self._settings.retry_base_s * 2 ** (attempts - 1) * random.uniform(0.5, 1.5)
            update = {
                "status": "pending",
                "reason": reason,
                "attempts": attempts,
                "next_attempt_at": datetime.now(UTC) + timedelta(seconds=delay),
            }
            log.warning("send failed (%s); retry in %.1fs", reason, delay)
        await self._runtime.db[OUTGOING].update_one({"_id": msg["_id"]}, {"$set": update})

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
