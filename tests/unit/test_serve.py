"""`c2f-serve`'s server: once it serves, what the service built at start is set apart from the
garbage collector (a full collection walked it all, 50-90 ms with the event loop standing
still), and garbage made later is still collected."""

import asyncio
import gc
import weakref
from typing import Any

import uvicorn

from c2f_cli.processes import free_port
from c2f_shared.service.serve import Server
from tests.support import eventually


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


async def test_what_a_started_server_built_is_left_out_of_collections_and_later_garbage_is_not() -> None:
    gc.unfreeze()
    config = uvicorn.Config(hello, host="127.0.0.1", port=free_port(), lifespan="off", log_level="warning")
    server = Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started)
        assert gc.get_freeze_count() > 0
        a, b = Node(), Node()
        a.other, b.other = b, a  # a cycle, only the collector frees
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is None
    finally:
        server.should_exit = True
        await serving
        gc.unfreeze()
