"""The one place where registration's refusals (`c2f_registration.errors`) become HTTP answers.

Each kind keeps the answer clients rely on: 404, 403 and 409 with `{"detail": reason}`;
an invalid input is a 422 shaped as FastAPI's own validation errors (`detail` lists each
field's location and the reason); an unreadable upload is a 422 with the reason.
"""

from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from c2f_registration import errors

STATUS: dict[type[errors.Refused], int] = {
    errors.NotFound: status.HTTP_404_NOT_FOUND,
    errors.Forbidden: status.HTTP_403_FORBIDDEN,
    errors.Conflict: status.HTTP_409_CONFLICT,  # also AlreadyRegistered, RegistrationClosed, CapacityReached
    errors.UnreadableFile: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


def status_of(error: errors.Refused) -> int:
    """The HTTP status of a refusal: that of its kind, or of the nearest kind it is a case of."""
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    raise LookupError(f"no HTTP status for {type(error).__name__}")


async def answer(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.Refused)
    if isinstance(error, errors.Invalid):
        return await request_validation_exception_handler(request, RequestValidationError(error.problems))
    return JSONResponse({"detail": error.reason}, status_code=status_of(error))


def install(app: FastAPI) -> None:
    """Answer every refusal a route lets through (and a dependency's) as above."""
    app.add_exception_handler(errors.Refused, answer)
