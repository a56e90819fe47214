"""Rotating C2F_LINK_SECRET in notifications: the mails it sends are signed with the new
secret, and links signed before (with the old secret, in itsdangerous' format or the one
used before it) still open their pages; a link under a secret it no longer knows does not.

Notifications' real delivery loop (to the test's SMTP server) and its real routes, on the
session's database and broker."""

import base64
import hashlib
import hmac
import json
import re
import time
import uuid

import pytest
from pydantic import SecretStr

from c2f_cli.stack import Stack
from c2f_notifications.store import RECIPIENTS
from c2f_shared import links
from tests.integration.test_delivery_backoff import (
    a_scene,
    delivering,
    flaky_server,
    notification_settings,
    operator_api,
    queue_confirmations,
)
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


def before_itsdangerous(secret: str, action: str, subject: str, participant_id: str) -> str:
    """A link as notifications signed them before itsdangerous: `<payload>.<HMAC-SHA256>`."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    body = {"a": action, "s": subject, "p": participant_id, "e": int(time.time() + 86400)}
    payload = b64(json.dumps(body, separators=(",", ":")).encode())
    return f"{payload}.{b64(hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest())}"


async def test_links_signed_before_a_rotation_still_open_their_pages(infra: Stack) -> None:
    new, old = "new-" + uuid.uuid4().hex, "old-" + uuid.uuid4().hex
    with flaky_server() as (server, port):
        server.accepting = True
        settings = notification_settings(
            infra,
            port,
            link_secret=SecretStr(new),
            link_secrets_old=SecretStr(f"{old}, older-{uuid.uuid4().hex}"),
        )
        async with delivering(settings) as (runtime, delivery):
            event_id, emails = await a_scene(runtime, 1)
            [pid] = emails
            await queue_confirmations(runtime, delivery, event_id, [pid])
            await eventually(lambda: len(server.received) == 1)
            text = server.received[0][1].get_body(("plain",))
            assert text is not None
            [token] = re.findall(r"/preferences/([\w.-]+)", text.get_content())
            assert links.verify(new, token).participant_id == pid, (
                "the mail's link is signed with the new secret"
            )
            with pytest.raises(links.BadLink):
                links.verify(old, token)

            async with operator_api(runtime, delivery) as client:
                assert (await client.get(f"/preferences/{token}")).status_code == 200
                for signed_before in (
                    links.sign(old, "unsubscribe", "reminder", pid),
                    before_itsdangerous(old, "unsubscribe", "reminder", pid),
                ):
                    await runtime.db[RECIPIENTS].update_one({"_id": pid}, {"$set": {"muted": []}})
                    page = await client.get(f"/unsubscribe/{signed_before}")
                    assert page.status_code == 200, page.text
                    done = await client.post(f"/unsubscribe/{signed_before}")
                    assert done.status_code == 200, done.text
                    person = await runtime.db[RECIPIENTS].find_one({"_id": pid})
                    assert person is not None and person["muted"] == ["reminder"]
                forgotten = links.sign("retired-" + uuid.uuid4().hex, "unsubscribe", "reminder", pid)
                refused = await client.get(f"/unsubscribe/{forgotten}")
                assert refused.status_code == 403 and "not one of ours" in refused.text
