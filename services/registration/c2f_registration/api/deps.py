"""What a route is given besides its parameters: the runtime and the request's correlation id.

Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, and two thread
hand-offs per request (as `c2f_shared.service.http`'s RuntimeDep and CorrelationId cost)
were a noticeable share of a registration's time on a busy machine.
"""

from typing import Annotated

from fastapi import Depends, Request

from c2f_shared.service import Runtime


async def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def correlation_id(request: Request) -> str:
    """The caller's correlation id, or the one made for this request (see service_app)."""
    return str(request.state.correlation_id)


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
CorrelationId = Annotated[str, Depends(correlation_id)]
