"""`c2f-serve SERVICE`: run one service's HTTP app and consumers with uvicorn, as the images do.

SIGTERM (what `docker stop` and Kubernetes send) stops taking requests, lets requests in
flight finish for up to `--graceful-seconds`, then stops the consumers and closes the
broker and database connections (each bounded); keep the orchestrator's grace period
(Compose `stop_grace_period`, Kubernetes `terminationGracePeriodSeconds`) above the sum.
"""

import argparse
import asyncio
import contextlib
import gc
import os
import socket
import sys
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE

SERVICES = ("registration", "matching", "notifications", "reporting")
GRACEFUL_SECONDS = 15  # requests in flight at SIGTERM may take this long to finish
# How long an idle keep-alive connection stays open. uvicorn's default, 5 s, is what many
# clients keep one (httpx: 5 s); a request sent on it as the server closes it fails with a
# dropped connection (httpx ReadError), and under load, when the server's event loop runs late,
# the close can come while the request is already on its way. Longer than any usual client's
# expiry, so that the client closes first (load balancers: keep it above their idle timeout).
KEEP_ALIVE_SECONDS = 75


TICK_SECONDS = 1.0  # uvicorn's own: 0.1


def settle_garbage_collector() -> None:
    """Set what the service has built by the time it serves (modules, templates, locale data,
    models: hundreds of thousands of objects it keeps for its life) apart from the garbage
    collector, which otherwise walks them all in every full collection: 50-90 ms in which the
    event loop stood still, a few times a minute under load (notifications' senders, measured).
    A full collection now looks only at what came since."""
    gc.collect()
    gc.freeze()


class Server(uvicorn.Server):
    """uvicorn's server, looking at its clock once a second instead of ten times a second, so
    that an idle service wakes up less often (`bench/idle.py`). A signal still stops it at once."""

    _woken: asyncio.Event | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            settle_garbage_collector()

    async def main_loop(self) -> None:
        self._woken, self._loop = asyncio.Event(), asyncio.get_running_loop()
        counter = 0  # on_tick renews the Date header when it is a multiple of 10: each tick
        while not await self.on_tick(counter):
            counter = (counter + 10) % 864000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), TICK_SECONDS)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        if self._loop is not None and self._woken is not None:
            self._loop.call_soon_threadsafe(self._woken.set)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="c2f-serve",
        description="Run one C2Future Match service (HTTP API and Kafka consumers) in this process.",
        epilog="Settings come from C2F_* environment variables; see docs/configuration.md.",
    )
    parser.add_argument(
        "service",
        nargs="?",
        default=os.environ.get("SERVICE"),
        choices=SERVICES,
        help="which service (default: $SERVICE)",
    )
    parser.add_argument("--host", default="0.0.0.0", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on (default: %(default)s)")
    parser.add_argument(
        "--graceful-seconds",
        type=int,
        default=GRACEFUL_SECONDS,
        help="on SIGTERM, how long requests in flight may take to finish (default: %(default)s)",
    )
    parser.add_argument(
        "--keep-alive-seconds",
        type=int,
        default=KEEP_ALIVE_SECONDS,
        help="how long an idle HTTP connection is kept open; keep it above the idle timeout of "
        "the clients and load balancers in front (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.service is None:
        parser.error(f"name the service ({', '.join(SERVICES)}) or set SERVICE")
    config = uvicorn.Config(
        f"c2f_{args.service}.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        access_log=False,  # each service logs its own requests with their correlation ids
        proxy_headers=True,
        timeout_graceful_shutdown=args.graceful_seconds,
        timeout_keep_alive=args.keep_alive_seconds,
    )
    server = Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:  # as uvicorn.run: the app did not start (its lifespan failed)
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
