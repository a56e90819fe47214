"""Signed action links in e-mails: "accept this meeting", "record this outcome",
"unsubscribe". A link carries what it allows (action, subject, participant, expiry), signed
with itsdangerous under C2F_LINK_SECRET, which the service that signs (notifications) and the
ones that act (matching, notifications) share through the environment. A link does one thing
for one participant, expires, and reveals no token.

Rotation: the secrets are given newest first (C2F_LINK_SECRET, then C2F_LINK_SECRETS_OLD,
comma-separated); the newest signs, every one verifies, so links already sent keep working
until they expire (at most a year: the preference links). Each action is its own salt, so a
signature made for one action is worth nothing for another.

Links signed before itsdangerous (`<payload>.<HMAC-SHA256>`, payload and MAC in unpadded
URL-safe base64) still verify under any of the secrets, through `_verify_before_itsdangerous`,
until the last of them has expired: remove it a year after the switch (December 2027)."""

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Self

from itsdangerous import BadSignature, URLSafeSerializer
from pydantic import BaseModel, SecretStr, model_validator


class BadLink(Exception):
    """The link was altered, signed with another secret, or has expired."""


@dataclass(frozen=True)
class Link:
    action: str  # e.g. "accept", "decline", "outcome", "unsubscribe"
    subject: str  # the meeting id, or the kind of message to unsubscribe from
    participant_id: str
    expires: int  # Unix time


Secrets = str | Sequence[str]  # one secret, or several newest first


def secrets_from(current: str | None, older: str | None) -> list[str]:
    """The secrets, newest first, from C2F_LINK_SECRET and C2F_LINK_SECRETS_OLD
    (comma-separated, newest first); empty if there is no current secret."""
    old = [s.strip() for s in (older or "").split(",") if s.strip()]
    if old and not current:
        raise ValueError("C2F_LINK_SECRETS_OLD is set without C2F_LINK_SECRET: set the current secret too")
    return [current, *old] if current else []


def _secrets(secret: Secrets) -> list[str]:
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys or not all(keys):
        raise ValueError("links need a secret (C2F_LINK_SECRET)")
    return keys


def _serializer(keys: list[str]) -> URLSafeSerializer:
    # itsdangerous signs with the last key of the list and verifies with any.
    return URLSafeSerializer(list(reversed(keys)), signer_kwargs={"digest_method": hashlib.sha256})


def _salt(action: str) -> str:
    return f"c2f-link:{action}"


def sign(secret: Secrets, action: str, subject: str, participant_id: str, valid_days: float = 60) -> str:
    body = {"a": action, "s": subject, "p": participant_id, "e": int(time.time() + valid_days * 86400)}
    return _serializer(_secrets(secret)).dumps(body, salt=_salt(action))


def verify(secret: Secrets, token: str) -> Link:
    keys = _secrets(secret)
    serializer = _serializer(keys)
    # The action names the salt; the signature is then checked under that salt.
    _, claimed = serializer.loads_unsafe(token)
    body: Any = None
    if isinstance(claimed, dict) and isinstance(claimed.get("a"), str):
        try:
            body = serializer.loads(token, salt=_salt(claimed["a"]))
        except BadSignature:
            body = None
    if body is None:
        if token.count(".") <= 1 and not token.startswith("."):  # the former format's shape
            body = _verify_before_itsdangerous(keys, token)
        else:  # itsdangerous' shape only (a compressed payload starts with ".")
            raise BadLink("this link is damaged" if claimed is None else "this link is not one of ours")
    if body["e"] < time.time():
        raise BadLink("this link has expired")
    return Link(body["a"], body["s"], body["p"], body["e"])


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _verify_before_itsdangerous(keys: list[str], token: str) -> dict[str, Any]:
    """Links sent before the switch to itsdangerous: `<payload>.<HMAC-SHA256 of payload>`."""
    payload, _, mac = token.partition(".")
    try:
        given = _unb64(mac)
        genuine = any(
            hmac.compare_digest(given, hmac.new(k.encode(), payload.encode(), hashlib.sha256).digest())
            for k in keys
        )
        body = json.loads(_unb64(payload)) if genuine else None
    except (ValueError, json.JSONDecodeError):
        raise BadLink("this link is damaged") from None
    if not isinstance(body, dict):
        raise BadLink("this link is not one of ours")
    return body


class LinkSecrets(BaseModel):
    """Settings of a service that signs or checks links: its `link_secret` and
    `link_secrets_old` (each service declares them with its own environment names)."""

    link_secret: SecretStr | None = None
    link_secrets_old: SecretStr | None = None

    @model_validator(mode="after")
    def _old_secrets_need_a_current_one(self) -> Self:
        self.link_secrets()
        return self

    def link_secrets(self) -> list[str]:
        """The link secrets, newest first; empty if links are not configured."""
        return secrets_from(
            self.link_secret.get_secret_value() if self.link_secret else None,
            self.link_secrets_old.get_secret_value() if self.link_secrets_old else None,
        )
