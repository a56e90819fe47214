"""`c2f-serve SERVICE`: run one service's HTTP app and consumers with uvicorn, as the images do.

SIGTERM (what `docker stop` and Kubernetes send) stops taking requests, lets requests in
flight finish for up to `--graceful-seconds`, then stops the consumers and closes the
broker and database connections (each bounded); keep the orchestrator's grace period
(Compose `stop_grace_period`, Kubernetes `terminationGracePeriodSeconds`) above the sum.
"""

import argparse
import os

import uvicorn

SERVICES = ("registration", "matching", "notifications", "reporting")
GRACEFUL_SECONDS = 15  # requests in flight at SIGTERM may take this long to finish


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
    args = parser.parse_args(argv)
    if args.service is None:
        parser.error(f"name the service ({', '.join(SERVICES)}) or set SERVICE")
    uvicorn.run(
        f"c2f_{args.service}.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        access_log=False,  # each service logs its own requests with their correlation ids
        proxy_headers=True,
        timeout_graceful_shutdown=args.graceful_seconds,
    )


if __name__ == "__main__":
    main()
