"""Domain refusals become HTTP answers in one place per service, with the statuses and bodies
clients rely on: registration's `api/errors.py`, matching's `api/meetings.refused`."""

import inspect

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from c2f_matching import meetings
from c2f_matching.api.meetings import refused
from c2f_registration import errors
from c2f_registration.api import errors as answers


def app_raising(error: Exception) -> FastAPI:
    app = FastAPI()
    answers.install(app)

    class Body(BaseModel):
        cluster_id: str

    @app.post("/refuse")
    async def refuse() -> None:
        raise error

    @app.post("/validate")
    async def validate(body: Body) -> None:
        return None

    return app


async def answer(error: Exception, path: str = "/refuse", body: object = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_raising(error))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.post(path, json=body if body is not None else {})


@pytest.mark.parametrize(
    ("error", "status", "detail"),
    [
        (errors.NotFound("company", "co-1"), 404, "no company 'co-1'"),
        (
            errors.Forbidden("an API key acts only for its own cluster"),
            403,
            "an API key acts only for its own cluster",
        ),
        (
            errors.Conflict("'dti' is already registered with different data"),
            409,
            "'dti' is already registered with different data",
        ),
        (
            errors.AlreadyRegistered("already registered for this event as participant p-1"),
            409,
            "already registered for this event as participant p-1",
        ),
        (
            errors.RegistrationClosed("registration closed at 2027-03-01"),
            409,
            "registration closed at 2027-03-01",
        ),
        (errors.CapacityReached(2), 409, "the event is full (2 places)"),
        (
            errors.UnreadableFile("cannot read the file: the file is empty"),
            422,
            "cannot read the file: the file is empty",
        ),
    ],
)
async def test_each_refusal_has_its_status_and_says_why(
    error: errors.Refused, status: int, detail: str
) -> None:
    response = await answer(error)
    assert (response.status_code, response.json()) == (status, {"detail": detail})


async def test_invalid_input_is_a_422_shaped_as_fastapis_own() -> None:
    ours = await answer(errors.Invalid.unknown("cluster_id", "cluster", "x"))
    fastapis = await answer(errors.Conflict("unused"), "/validate", {"cluster_id": 7})
    assert ours.status_code == fastapis.status_code == 422
    assert ours.json() == {
        "detail": [
            {"loc": ["body", "cluster_id"], "msg": "unknown cluster 'x'", "type": "value_error.unknown"}
        ]
    }
    assert set(ours.json()["detail"][0]) <= set(fastapis.json()["detail"][0])


def test_every_kind_of_refusal_has_an_answer() -> None:
    kinds = [k for _, k in inspect.getmembers(errors, inspect.isclass) if issubclass(k, errors.Refused)]
    for kind in kinds:
        if kind in (errors.Refused, errors.Invalid):
            continue
        assert answers.STATUS.keys() & set(kind.__mro__), kind


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (meetings.NotFound("no meeting 'm-1'"), 404),
        (meetings.NotYours("only a party to the meeting can cancel it"), 403),
        (meetings.NotNow("this request is already cancelled"), 409),
        (meetings.NotYet("event 'e-1' has not reached matching yet; try again in a moment"), 503),
    ],
)
def test_matching_refusals_keep_their_statuses(error: meetings.Refused, status: int) -> None:
    http = refused(error)
    assert isinstance(http, HTTPException)
    assert (http.status_code, http.detail) == (status, error.detail)
    # "Try again" says when, as a busy database does.
    assert (http.headers or {}).get("Retry-After") == ("1" if status == 503 else None)


def test_an_invalid_meeting_request_names_the_field() -> None:
    http = refused(meetings.Invalid("a participant cannot request a meeting with itself", "with"))
    assert isinstance(http, RequestValidationError)
    assert http.errors() == [
        {
            "loc": ("body", "with"),
            "msg": "a participant cannot request a meeting with itself",
            "type": "value_error",
        }
    ]


def test_meeting_rules_carry_no_http_status() -> None:
    source = inspect.getsource(meetings)
    assert "status_code" not in source and "HTTP" not in source
    assert not any(f"({code}," in source for code in ("403", "404", "409", "422"))
