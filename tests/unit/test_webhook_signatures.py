"""Webhook calls are signed per Standard Webhooks, checked with the `standardwebhooks` library
as a cluster would; keys issued before the scheme still verify, in both schemes."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from c2f_notifications import webhooks

BODY = json.dumps({"id": "webhook:d-1", "kind": "registration_confirmed"}, separators=(",", ":")).encode()


def test_a_new_key_signs_calls_a_standard_webhooks_library_verifies() -> None:
    key = webhooks.new_key()
    assert key.startswith("whsec_") and len(base64.b64decode(key.removeprefix("whsec_"))) == 32
    headers = webhooks.signed_headers(key, "webhook:d-1", BODY)
    assert Webhook(key).verify(BODY, headers) == json.loads(BODY)
    assert headers["webhook-signature"].startswith("v1,")
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature"}


def test_another_key_a_changed_body_or_id_or_an_old_call_is_refused() -> None:
    key = webhooks.new_key()
    headers = webhooks.signed_headers(key, "webhook:d-1", BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(webhooks.new_key()).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(BODY.replace(b"d-1", b"d-2"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(key).verify(BODY, {**headers, "webhook-id": "webhook:d-2"})
    stale = webhooks.signed_headers(key, "webhook:d-1", BODY, datetime.now(UTC) - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(key).verify(BODY, stale)


def test_a_key_issued_before_the_scheme_verifies_in_both() -> None:
    legacy = "Zm9vYmFyLWtleS1mcm9tLWJlZm9yZQ_-x"  # secrets.token_urlsafe's alphabet, no whsec_
    headers = webhooks.signed_headers(legacy, "webhook:d-1", BODY)
    # The former scheme, unchanged for the receivers written for it.
    stamp = headers["X-C2F-Timestamp"]
    expected = hmac.new(legacy.encode(), stamp.encode() + b"." + BODY, hashlib.sha256).hexdigest()
    assert headers["X-C2F-Signature"] == f"sha256={expected}"
    # And Standard Webhooks, with the key's text as the HMAC key.
    assert Webhook(legacy.encode()).verify(BODY, headers) == json.loads(BODY)
    assert Webhook("whsec_" + base64.b64encode(legacy.encode()).decode()).verify(BODY, headers)
