"""How webhook calls are signed: the Standard Webhooks scheme (https://www.standardwebhooks.com),
so a cluster verifies them with an existing library (`standardwebhooks`, `svix`, …).

Each POST carries `webhook-id` (the delivery's id, the same on every retry: the receiver's
dedupe key), `webhook-timestamp` (Unix seconds) and `webhook-signature`
("v1,<base64 HMAC-SHA256 of '<id>.<timestamp>.<body>'>"). A key is "whsec_<base64 of 32
random bytes>".

Keys issued before this scheme (plain URL-safe text, no "whsec_") keep working: their calls
carry the same Standard Webhooks headers, signed with the key's text as the HMAC key (so
`Webhook(key.encode())` verifies them), and also the former `X-C2F-Timestamp` and
`X-C2F-Signature: sha256=<hex HMAC-SHA256 of '<timestamp>.<body>'>`, until the cluster's
webhook is set again (which issues a whsec_ key)."""

import base64
import hashlib
import hmac
import secrets
from datetime import UTC, datetime

from standardwebhooks import Webhook

PREFIX = "whsec_"


def new_key() -> str:
    """A fresh signing key, in the form Standard Webhooks libraries take."""
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def is_legacy(key: str) -> bool:
    return not key.startswith(PREFIX)


def signed_headers(key: str, delivery_id: str, body: bytes, at: datetime | None = None) -> dict[str, str]:
    """The headers that authenticate `body` as delivery `delivery_id`, sent at `at` (now)."""
    at = (at or datetime.now(UTC)).astimezone(UTC)
    stamp = str(int(at.timestamp()))
    signer = Webhook(key.encode() if is_legacy(key) else key)
    headers = {
        "webhook-id": delivery_id,
        "webhook-timestamp": stamp,
        "webhook-signature": signer.sign(delivery_id, at, body.decode()),
    }
    if is_legacy(key):
        mac = hmac.new(key.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers |= {
            "X-C2F-Delivery": delivery_id,
            "X-C2F-Timestamp": stamp,
            "X-C2F-Signature": f"sha256={mac}",
        }
    return headers
