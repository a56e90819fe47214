"""Notifications' process: consumers that queue messages, and the SMTP delivery loop.
Run with `uvicorn c2f_notifications.app:create_app --factory`."""

from fastapi import FastAPI

from c2f_notifications import api, handlers
from c2f_notifications.config import Settings
from c2f_notifications.delivery import Delivery
from c2f_shared import topics
from c2f_shared.events import NotificationSent
from c2f_shared.service import Runtime
from c2f_shared.service.http import service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, service="notifications")
    delivery = Delivery(runtime, settings)

    async def on_start(_: Runtime) -> None:
        await delivery.ensure_indexes()

    runtime.on_start(on_start)
    runtime.consume(
        [topics.PARTICIPANTS, topics.MATCH_SUGGESTIONS, topics.COMPANIES],
        handlers.make_handler(delivery.wake),
        name="facts",
        only=handlers.HANDLES,
    )
    runtime.background(delivery.run_forever)
    runtime.publishes(NotificationSent)
    return service_app(
        runtime,
        description="E-mails participants about what concerns them, exactly once. "
        "Reads participants and match suggestions; publishes what was sent.",
        router=api.router,
    )
