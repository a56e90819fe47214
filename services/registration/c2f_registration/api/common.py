"""What the routers share: the answers they document, and how a registration answers."""

from typing import Any

from fastapi import Response, status

from c2f_registration import store

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


def created(response: Response, stored: store.Stored) -> store.Stored:
    """201 for a new registration, 200 for one that was already there."""
    response.status_code = status.HTTP_201_CREATED if stored.created else status.HTTP_200_OK
    return stored
