"""Notifications' HTTP API: each participant's inbox and e-mail preferences, the pages that
signed links in mails open (unsubscribe, preferences), and the operator's view of the queue
with re-drive of dead letters."""

from datetime import UTC, datetime, timedelta
from html import escape
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field, HttpUrl

from c2f_notifications import webhooks
from c2f_notifications.i18n import Words
from c2f_notifications.messages import KIND_NAMES, OPTIONAL
from c2f_notifications.store import OUTGOING, RECIPIENTS, TIMERS, WEBHOOKS
from c2f_shared import links
from c2f_shared.service.access import (
    OPERATOR_ONLY,
    PARTICIPANT_OR_OPERATOR,
    SIGNED_LINK,
    Token,
    is_operator,
    owns,
    require_operator,
)
from c2f_shared.service.http import RuntimeDep

router = APIRouter()
Status = Literal["pending", "sending", "sent", "failed", "cancelled"]


def _operator(request: Request, token: str) -> None:
    require_operator(request, token, "do this")


async def _participant(request: Request, runtime: Any, token: str, participant_id: str) -> dict[str, Any]:
    """The recipient, if `token` is its own participant token or the operator's."""
    person: dict[str, Any] | None = await runtime.db[RECIPIENTS].find_one({"_id": participant_id})
    if person is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no participant {participant_id!r}")
    if is_operator(request, token) or owns(token, participant_id, person.get("token_hash")):
        return person
    raise HTTPException(status.HTTP_403_FORBIDDEN, "this token is not this participant's")


class InboxItem(BaseModel):
    id: str
    kind: str
    subject: str | None = Field(None, description="As sent (in the recipient's language)")
    status: Status
    attempts: int
    created_at: datetime
    sent_at: datetime | None = None
    reason: str | None = Field(None, description="Why it failed or was not sent")


class Upcoming(BaseModel):
    kind: str
    due_at: datetime


class Inbox(BaseModel):
    participant_id: str
    messages: list[InboxItem]
    upcoming: list[Upcoming] = Field(description="Digests, reminders and requests still to come")


@router.get(
    "/participants/{participant_id}/inbox",
    response_model=Inbox,
    tags=["inbox"],
    responses=PARTICIPANT_OR_OPERATOR,
)
async def inbox(participant_id: str, request: Request, runtime: RuntimeDep, token: Token) -> Inbox:
    """What the platform sent this participant (or will send), newest first, with status."""
    await _participant(request, runtime, token, participant_id)
    docs = (
        await runtime.db[OUTGOING].find({"recipient_id": participant_id}).sort("created_at", -1).to_list(200)
    )
    later = (
        await runtime.db[TIMERS]
        .find({"recipient_id": participant_id, "status": "pending"})
        .sort("due_at", 1)
        .to_list(200)
    )
    return Inbox(
        participant_id=participant_id,
        messages=[
            InboxItem(id=d["_id"], **{k: d.get(k) for k in InboxItem.model_fields if k != "id"}) for d in docs
        ],
        upcoming=[Upcoming(kind=t["kind"], due_at=t["due_at"]) for t in later],
    )


class Preferences(BaseModel):
    muted: list[
        Literal["suggestions_digest", "reminder", "outcome_request", "recording_available", "nudge"]
    ] = Field(
        [],
        description="Optional kinds the participant does not want; messages about its registration "
        "and meetings always come",
    )
    digest_hours: Annotated[float, Field(ge=1, le=24 * 30)] | None = Field(
        None, description="At most one suggestions digest per this many hours (default: the platform's)"
    )


@router.get(
    "/participants/{participant_id}/preferences",
    response_model=Preferences,
    tags=["inbox"],
    responses=PARTICIPANT_OR_OPERATOR,
)
async def get_preferences(
    participant_id: str, request: Request, runtime: RuntimeDep, token: Token
) -> Preferences:
    person = await _participant(request, runtime, token, participant_id)
    return Preferences(muted=person.get("muted", []), digest_hours=person.get("digest_hours"))


@router.put(
    "/participants/{participant_id}/preferences",
    response_model=Preferences,
    tags=["inbox"],
    responses=PARTICIPANT_OR_OPERATOR,
)
async def put_preferences(
    participant_id: str, body: Preferences, request: Request, runtime: RuntimeDep, token: Token
) -> Preferences:
    """Choose which optional e-mails to receive and how often suggestions come."""
    await _participant(request, runtime, token, participant_id)
    await runtime.db[RECIPIENTS].update_one(
        {"_id": participant_id},
        {"$set": {"muted": sorted(set(body.muted)), "digest_hours": body.digest_hours}},
    )
    return body


def _verified(request: Request, token: str, action: str) -> links.Link:
    try:
        link = links.verify(request.app.state.link_secret, token)
    except links.BadLink as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from None
    if link.action != action:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this link is for something else")
    return link


def _page(language: str, title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html lang="{language}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>
<style>body{{font-family:Arial,Helvetica,sans-serif;max-width:34em;margin:3em auto;padding:0 1em;
color:#1b1f24}} button{{font-size:1em;padding:.6em 1.4em;border:0;border-radius:4px;background:#0b5cad;
color:#fff;cursor:pointer}}
label{{display:block;margin:.4em 0}}</style></head>
<body><h1>{escape(title)}</h1>{body}</body></html>"""
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, tags=["links"], responses=SIGNED_LINK)
async def unsubscribe_page(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """The page an unsubscribe link opens: it asks before doing anything (mail scanners open
    links too)."""
    link = _verified(request, token, "unsubscribe")
    person = await runtime.db[RECIPIENTS].find_one({"_id": link.participant_id}) or {}
    t = Words(person.get("language", "en"))
    kind = t(KIND_NAMES[link.subject]) if link.subject in OPTIONAL else link.subject
    question, confirm = escape(t("unsubscribe.question", kind=kind)), escape(t("unsubscribe.confirm"))
    form = f'<p>{question}</p><form method="post"><button>{confirm}</button></form>'
    return _page(t.language, t("unsubscribe.title"), form)


@router.post(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    tags=["links"],
    responses={**SIGNED_LINK, 422: {"description": "Messages about meetings cannot be muted"}},
)
async def unsubscribe(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """Mute the optional kind of message the link names, for the participant it names."""
    link = _verified(request, token, "unsubscribe")
    if link.subject not in OPTIONAL:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "messages about meetings cannot be muted")
    await runtime.db[RECIPIENTS].update_one(
        {"_id": link.participant_id}, {"$addToSet": {"muted": link.subject}}
    )
    person = await runtime.db[RECIPIENTS].find_one({"_id": link.participant_id}) or {}
    t = Words(person.get("language", "en"))
    done = t("unsubscribe.done", kind=t(KIND_NAMES[link.subject]))
    return _page(t.language, t("unsubscribe.title"), f"<p>{escape(done)}</p>")


@router.get("/preferences/{token}", response_class=HTMLResponse, tags=["links"], responses=SIGNED_LINK)
async def preferences_page(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """The page the "choose which e-mails you receive" link opens."""
    link = _verified(request, token, "preferences")
    person = await runtime.db[RECIPIENTS].find_one({"_id": link.participant_id}) or {}
    t = Words(person.get("language", "en"))
    muted = set(person.get("muted", []))
    boxes = "".join(
        f'<label><input type="checkbox" name="wanted" value="{k}"{"" if k in muted else " checked"}> '
        f"{escape(t(KIND_NAMES[k]))}</label>"
        for k in sorted(OPTIONAL)
    )
    form = f'<form method="post">{boxes}<p><button>OK</button></p></form><p>{escape(t("essential"))}</p>'
    return _page(t.language, t("footer_preferences"), form)


@router.post("/preferences/{token}", response_class=HTMLResponse, tags=["links"], responses=SIGNED_LINK)
async def save_preferences(
    token: str, request: Request, runtime: RuntimeDep, wanted: Annotated[list[str] | None, Form()] = None
) -> HTMLResponse:
    link = _verified(request, token, "preferences")
    muted = sorted(OPTIONAL - set(wanted or []))
    await runtime.db[RECIPIENTS].update_one({"_id": link.participant_id}, {"$set": {"muted": muted}})
    return await preferences_page(token, request, runtime)


@router.get("/outgoing/summary", tags=["outgoing"], responses=OPERATOR_ONLY)
async def summary(request: Request, runtime: RuntimeDep, token: Token) -> dict[str, int]:
    """How many messages are pending, being sent, sent, failed (dead letters) and cancelled,
    and how many timers (digests, reminders, …) fall due within 5 seconds."""
    _operator(request, token)
    counts = {"pending": 0, "sending": 0, "sent": 0, "failed": 0, "cancelled": 0}
    async for row in await runtime.db[OUTGOING].aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}]):
        counts[row["_id"]] = row["n"]
    soon = datetime.now(UTC) + timedelta(seconds=5)
    counts["timers_due_soon"] = await runtime.db[TIMERS].count_documents(
        {"status": {"$in": ["pending", "firing"]}, "due_at": {"$lte": soon}}
    )
    return counts


@router.get("/outgoing", tags=["outgoing"], responses=OPERATOR_ONLY)
async def list_outgoing(
    request: Request,
    runtime: RuntimeDep,
    token: Token,
    state: Annotated[Status | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Queued messages, newest first (operator): kind, recipient id, status, attempts and
    every try with its result. No contact data."""
    _operator(request, token)
    query = {"status": state} if state else {}
    cursor = runtime.db[OUTGOING].find(query, {"data": 0}).sort("created_at", -1).limit(limit)
    return [{"id": doc.pop("_id"), **doc} async for doc in cursor]


@router.post(
    "/outgoing/{message_id}/redrive",
    tags=["outgoing"],
    responses={**OPERATOR_ONLY, 409: {"description": "Only a failed message can be re-driven"}},
)
async def redrive(message_id: str, request: Request, runtime: RuntimeDep, token: Token) -> dict[str, Any]:
    """Send a dead-lettered (failed) message again, from its first attempt (operator)."""
    _operator(request, token)
    result = await runtime.db[OUTGOING].update_one(
        {"_id": message_id, "status": "failed"},
        {
            "$set": {
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": datetime.now(UTC),
                "redriven_at": datetime.now(UTC),
            }
        },
    )
    if result.matched_count == 0:
        raise HTTPException(status.HTTP_409_CONFLICT, "only a failed message can be re-driven")
    request.app.state.wake()
    return {"id": message_id, "status": "pending"}


class WebhookIn(BaseModel):
    url: HttpUrl = Field(description="Where the cluster's system receives the facts (POST, JSON)")


class WebhookOut(BaseModel):
    cluster_id: str
    url: str
    created_at: datetime
    secret: str | None = Field(
        None,
        description="Shown once: the key (whsec_…) to verify each call's `webhook-signature` with a "
        "Standard Webhooks library (HMAC-SHA256 of '<webhook-id>.<webhook-timestamp>.<body>'). "
        "Setting the webhook again makes a new key.",
    )


@router.put(
    "/clusters/{cluster_id}/webhook", response_model=WebhookOut, tags=["webhooks"], responses=OPERATOR_ONLY
)
async def set_webhook(
    cluster_id: str, body: WebhookIn, request: Request, runtime: RuntimeDep, token: Token
) -> WebhookOut:
    """Send every message meant for the cluster's participants to the cluster's own system
    too (operator): signed with a key the cluster holds (Standard Webhooks), retried with
    backoff, dead-lettered like e-mails. No contact data travels."""
    _operator(request, token)
    secret = webhooks.new_key()
    doc = {"url": str(body.url), "secret": secret, "created_at": datetime.now(UTC)}
    await runtime.db[WEBHOOKS].update_one({"_id": cluster_id}, {"$set": doc}, upsert=True)
    return WebhookOut(cluster_id=cluster_id, url=doc["url"], created_at=doc["created_at"], secret=secret)


@router.get(
    "/clusters/{cluster_id}/webhook",
    response_model=WebhookOut,
    tags=["webhooks"],
    responses={**OPERATOR_ONLY, 404: {"description": "The cluster has no webhook"}},
)
async def get_webhook(cluster_id: str, request: Request, runtime: RuntimeDep, token: Token) -> WebhookOut:
    _operator(request, token)
    doc = await runtime.db[WEBHOOKS].find_one({"_id": cluster_id})
    if doc is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"cluster {cluster_id!r} has no webhook")
    return WebhookOut(cluster_id=cluster_id, url=doc["url"], created_at=doc["created_at"])


@router.delete("/clusters/{cluster_id}/webhook", status_code=204, tags=["webhooks"], responses=OPERATOR_ONLY)
async def delete_webhook(cluster_id: str, request: Request, runtime: RuntimeDep, token: Token) -> None:
    _operator(request, token)
    await runtime.db[WEBHOOKS].delete_one({"_id": cluster_id})
