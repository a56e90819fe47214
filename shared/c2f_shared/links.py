"""Signed action links in e-mails: "accept this meeting", "record this outcome",
"unsubscribe". A link carries what it allows (action, subject, participant, expiry) and an
HMAC-SHA256 of it under C2F_LINK_SECRET, which the service that signs (notifications) and
the one that acts (matching, notifications) share through the environment. A link does one
thing for one participant, expires, and reveals no token."""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass


class BadLink(Exception):
    """The link was altered, signed with another secret, or has expired."""


@dataclass(frozen=True)
class Link:
    action: str  # e.g. "accept", "decline", "outcome", "unsubscribe"
    subject: str  # the meeting id, or the kind of message to unsubscribe from
    participant_id: str
    expires: int  # Unix time


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: str, action: str, subject: str, participant_id: str, valid_days: float = 60) -> str:
    body = {"a": action, "s": subject, "p": participant_id, "e": int(time.time() + valid_days * 86400)}
    payload = _b64(json.dumps(body, separators=(",", ":")).encode())
    mac = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify(secret: str, token: str) -> Link:
    payload, _, mac = token.partition(".")
    expected = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).digest()
    try:
        genuine = hmac.compare_digest(_unb64(mac), expected)
        body = json.loads(_unb64(payload)) if genuine else None
    except (ValueError, json.JSONDecodeError):
        raise BadLink("this link is damaged") from None
    if body is None:
        raise BadLink("this link is not one of ours")
    if body["e"] < time.time():
        raise BadLink("this link has expired")
    return Link(body["a"], body["s"], body["p"], body["e"])
