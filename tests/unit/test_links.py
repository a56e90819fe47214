"""Signed links (itsdangerous): what a link allows, key rotation, links in the format sent
before itsdangerous, and the same clear refusals for a tampered, foreign or expired link."""

import hashlib

import pytest
from itsdangerous import URLSafeSerializer
from pydantic import SecretStr, ValidationError

from c2f_matching.config import Settings as MatchingSettings
from c2f_notifications.config import Settings as NotificationsSettings
from c2f_shared import links

# Made by the former signer (`<payload>.<HMAC-SHA256>`) under "former-secret": one expiring
# in 2100, one that expired in January 2024. Such links are in mailboxes for months.
BEFORE_ITSDANGEROUS = (
    "eyJhIjoiYWNjZXB0IiwicyI6Im10LTEiLCJwIjoicC0xIiwiZSI6NDEwMjQ0NDgwMH0"
    ".uJHpx4v36n_DV8zBalMsrumLEifcgFsvMJ0MLb0tn-Y"
)
BEFORE_ITSDANGEROUS_EXPIRED = (
    "eyJhIjoiYWNjZXB0IiwicyI6Im10LTEiLCJwIjoicC0xIiwiZSI6MTcwNTE4NDAwMH0"
    ".RR65FGGDQZeDDerfw4Vj7mqh36xNLg4_lC6k_fER0OA"
)


def refusal(secrets: links.Secrets, token: str) -> str:
    with pytest.raises(links.BadLink) as refused:
        links.verify(secrets, token)
    return str(refused.value)


def test_a_link_signed_under_the_old_secret_still_verifies_after_rotation() -> None:
    before = links.sign("first", "accept", "mt-1", "p-1")
    rotated = ["second", "first"]  # C2F_LINK_SECRET=second, C2F_LINK_SECRETS_OLD=first
    assert links.verify(rotated, before).action == "accept"
    after = links.sign(rotated, "decline", "mt-1", "p-1")
    assert links.verify("second", after).action == "decline", "the newest secret signs"
    assert refusal("first", after) == "this link is not one of ours"
    # Once the old secret is dropped, what it signed is refused.
    assert refusal(["second"], before) == "this link is not one of ours"


def test_links_in_the_former_format_still_verify_under_any_secret() -> None:
    link = links.verify(["current", "former-secret"], BEFORE_ITSDANGEROUS)
    assert link == links.Link("accept", "mt-1", "p-1", 4102444800)
    assert refusal(["current"], BEFORE_ITSDANGEROUS) == "this link is not one of ours"
    assert refusal(["former-secret"], BEFORE_ITSDANGEROUS_EXPIRED) == "this link has expired"
    payload, _, mac = BEFORE_ITSDANGEROUS.partition(".")
    assert (
        refusal(["former-secret"], payload.replace("Im10LTEi", "Im10LTIi") + "." + mac)
        == "this link is not one of ours"
    )


def test_tampered_foreign_and_expired_links_are_refused_clearly() -> None:
    token = links.sign("s3cret", "accept", "mt-1", "p-1")
    signature = token.rpartition(".")[2]
    forged = links.sign("s3cret", "accept", "mt-2", "p-1").rpartition(".")[0] + "." + signature
    for bad in (forged, token[:-2] + "xx", "nonsense", links.sign("other", "accept", "mt-1", "p-1")):
        assert refusal("s3cret", bad) == "this link is not one of ours", bad
    assert refusal("s3cret", "e30.a") == "this link is damaged", "a signature that is not base64"
    expired = links.sign("s3cret", "accept", "mt-1", "p-1", valid_days=-1)
    assert refusal("s3cret", expired) == "this link has expired"


def test_each_action_is_its_own_salt() -> None:
    """A signature made for one action (its salt) is worth nothing for another."""
    signer = URLSafeSerializer(["s3cret"], signer_kwargs={"digest_method": hashlib.sha256})
    body = {"a": "accept", "s": "mt-1", "p": "p-1", "e": 4102444800}
    assert links.verify("s3cret", signer.dumps(body, salt="c2f-link:accept")).action == "accept"
    for other in ("c2f-link:unsubscribe", "c2f-link:", None):
        assert refusal("s3cret", signer.dumps(body, salt=other)) == "this link is not one of ours"


def test_the_settings_list_the_secrets_newest_first_and_refuse_old_ones_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("LINK_SECRET", "LINK_SECRETS_OLD"):
        for prefix in ("C2F_", "C2F_MATCHING_", "C2F_NOTIFICATIONS_"):
            monkeypatch.delenv(prefix + name, raising=False)
    for settings_type in (MatchingSettings, NotificationsSettings):
        settings = settings_type(link_secret=SecretStr("new"), link_secrets_old=SecretStr(" older , oldest,"))
        assert settings.link_secrets() == ["new", "older", "oldest"]
        assert settings_type().link_secrets() == []
        with pytest.raises(ValidationError, match="C2F_LINK_SECRETS_OLD is set without C2F_LINK_SECRET"):
            settings_type(link_secrets_old=SecretStr("older"))


def test_a_long_link_is_compressed_and_refused_under_another_secret_as_foreign() -> None:
    token = links.sign("s3cret", "unsubscribe", "reminder" * 8, "p-1")
    assert token.startswith("."), "itsdangerous compresses a payload that gains from it"
    assert links.verify("s3cret", token).subject == "reminder" * 8
    assert refusal("other", token) == "this link is not one of ours"
    assert refusal("s3cret", ".AAAA." + token.rpartition(".")[2]) == "this link is damaged", "not zlib"
