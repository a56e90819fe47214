"""The pages that links in e-mails open: accept or decline a meeting request, record a
meeting's outcome. A link is signed for one action by one participant (see c2f_shared.links);
opening it only shows a page, the button does it (mail scanners open links too)."""

from html import escape
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from c2f_matching import meetings
from c2f_matching.api.meetings import parties
from c2f_matching.meetings import Refused
from c2f_matching.store import EVENTS, MEETINGS
from c2f_shared import links
from c2f_shared.service import UnitOfWork
from c2f_shared.service.access import SIGNED_LINK
from c2f_shared.service.http import RuntimeDep
from c2f_shared.vocabulary import FollowUp

router = APIRouter(tags=["links"], responses=SIGNED_LINK)

VERBS = {"accept": "Accept", "decline": "Decline", "outcome": "Record the outcome"}
FOLLOW_UPS = {
    FollowUp.NONE: "nothing yet",
    FollowUp.FURTHER_CONTACT: "further contact",
    FollowUp.OFFER_SENT: "an offer was sent",
    FollowUp.AGREEMENT_SIGNED: "an agreement was signed",
}


def _link(request: Request, token: str) -> links.Link:
    secret = request.app.state.link_secret
    if secret is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "links are not configured (C2F_LINK_SECRET)")
    try:
        link = links.verify(secret, token)
    except links.BadLink as error:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(error)) from None
    if link.action not in VERBS:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this link is for something else")
    return link


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{escape(title)}</title>
<style>body{{font-family:Arial,Helvetica,sans-serif;max-width:34em;margin:3em auto;padding:0 1em;
color:#1b1f24}} button{{font-size:1em;padding:.6em 1.4em;border:0;border-radius:4px;background:#0b5cad;
color:#fff;cursor:pointer}} label{{display:block;margin:.5em 0}}</style></head>
<body><h1>{escape(title)}</h1>{body}</body></html>"""
    )


async def _describe(runtime: Any, meeting: dict[str, Any], me: str) -> str:
    who = await parties(runtime.db, meeting["parties"])
    event = await runtime.db[EVENTS].find_one({"_id": meeting["event_id"]}) or {}
    others = ", ".join(who[p].name for p in meeting["parties"] if p != me and p in who)
    return f"{others} — {event.get('name', '')}"


@router.get(
    "/act/{token}",
    response_class=HTMLResponse,
    responses={404: {"description": "The meeting no longer exists"}},
)
async def act_page(token: str, request: Request, runtime: RuntimeDep) -> HTMLResponse:
    """What the link will do, and a button to do it."""
    link = _link(request, token)
    meeting = await runtime.db[MEETINGS].find_one({"_id": link.subject})
    if meeting is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "this meeting no longer exists")
    about = escape(await _describe(runtime, meeting, link.participant_id))
    verb = VERBS[link.action]
    if link.action == "outcome":
        options = "".join(f'<option value="{k.value}">{escape(v)}</option>' for k, v in FOLLOW_UPS.items())
        stars = "".join(f'<option value="{n}">{n}</option>' for n in range(5, 0, -1))
        form = (
            f"<p>{about}</p><form method='post'>"
            "<label><input type='radio' name='held' value='true' checked> The meeting took place</label>"
            "<label><input type='radio' name='held' value='false'> It did not take place</label>"
            f"<label>Rating <select name='rating'><option value=''>—</option>{stars}</select></label>"
            f"<label>What followed <select name='follow_up'>{options}</select></label>"
            f"<p><button>{verb}</button></p></form>"
        )
    else:
        form = f"<p>{about}</p><form method='post'><button>{verb}</button></form>"
    return _page(f"{verb}: meeting request" if link.action != "outcome" else verb, form)


@router.post("/act/{token}", response_class=HTMLResponse)
async def act(
    token: str,
    request: Request,
    runtime: RuntimeDep,
    held: Annotated[bool, Form()] = True,
    rating: Annotated[str, Form()] = "",
    follow_up: Annotated[FollowUp, Form()] = FollowUp.NONE,
) -> HTMLResponse:
    """Do what the link allows, as the participant it was signed for."""
    link = _link(request, token)
    me = link.participant_id

    async def work(uow: UnitOfWork) -> dict[str, Any]:
        if link.action == "outcome":
            stars = int(rating) if rating.isdigit() and 1 <= int(rating) <= 5 else None
            return await meetings.record_outcome(uow, link.subject, me, held, stars, follow_up.value)
        return await meetings.answer(uow, link.subject, me, link.action == "accept", me)

    try:
        await runtime.transact(work)
    except Refused as error:
        return _page("Nothing to do", f"<p>{escape(error.detail)}</p>")
    done = {"accept": "Accepted", "decline": "Declined", "outcome": "Thank you: outcome recorded"}[
        link.action
    ]
    return _page(done, "<p>You can close this page.</p>")
