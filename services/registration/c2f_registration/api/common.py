"""What the routers share: error shapes and the answers of a registration."""

from typing import Any, TypeVar

import pydantic
from fastapi import HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from c2f_registration import store
from c2f_shared.service import Runtime

MAX_OFFSET = 2**31 - 1  # no list is this long; a skip beyond 64 bits would fail in the database driver

CREATED: dict[int | str, dict[str, Any]] = {
    200: {"description": "Already registered with identical data; nothing new was published"},
    401: {"description": "No or unknown token"},
    403: {"description": "The token may not act for this cluster"},
    409: {"description": "Different data is already registered under the same natural key"},
    422: {"description": "Invalid input; `detail` names each field and the reason"},
}


NOT_YOUR_CLUSTER: dict[int | str, dict[str, Any]] = {
    403: {"description": "An API key acts only for its own cluster"}
}
OWN_CLUSTER: dict[int | str, dict[str, Any]] = {
    **NOT_YOUR_CLUSTER,
    404: {"description": "No such cluster served by this instance"},
}


def unknown(field: str, what: str, value: str) -> RequestValidationError:
    """A 422 naming `field`, as FastAPI's own validation errors do."""
    return RequestValidationError(
        [{"loc": ("body", field), "msg": f"unknown {what} {value!r}", "type": "value_error.unknown"}]
    )


def not_found(what: str, item_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {item_id!r}")


async def register(
    response: Response,
    runtime: Runtime,
    collection: str,
    natural_key: str,
    data: dict[str, Any],
    make_event: Any,
    correlation: str,
    extra: dict[str, Any] | None = None,
    on_created: store.OnCreated | None = None,
) -> store.Stored:
    try:
        stored = await store.register_once(
            runtime, collection, natural_key, data, make_event, correlation, extra, on_created
        )
    except store.Conflict as conflict:
        raise HTTPException(status.HTTP_409_CONFLICT, str(conflict)) from None
    response.status_code = status.HTTP_201_CREATED if stored.created else status.HTTP_200_OK
    return stored


M = TypeVar("M", bound=BaseModel)


def merged(model: type[M], data: dict[str, Any]) -> M:
    """`data` (stored fields with a PATCH applied) as `model`, or the 422 a request body would get."""
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


async def replace(
    runtime: Runtime,
    collection: str,
    doc: dict[str, Any],
    natural_key: str,
    data: dict[str, Any],
    make_event: Any,
    correlation: str,
) -> tuple[dict[str, Any], bool]:
    """`store.replace`, with a conflict answered as 409."""
    try:
        return await store.replace(runtime, collection, doc, natural_key, data, make_event, correlation)
    except store.Conflict as conflict:
        raise HTTPException(status.HTTP_409_CONFLICT, str(conflict)) from None
