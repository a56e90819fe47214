"""Notifications' process: consumers that keep what messages need and queue them, and the
loop that fires timers and sends over SMTP. Run with
`uvicorn c2f_notifications.app:create_app --factory`."""

from fastapi import FastAPI

from c2f_notifications import api, handlers
from c2f_notifications.config import Settings
from c2f_notifications.delivery import Delivery
from c2f_shared.events import MessageDeadLettered, NotificationSent
from c2f_shared.service import Runtime
from c2f_shared.service.access import operator_digest
from c2f_shared.service.http import service_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, service="notifications")
    delivery = Delivery(runtime, settings)

    async def on_start(_: Runtime) -> None:
        await delivery.ensure_indexes()

    runtime.on_start(on_start)
    runtime.consume(handlers.make_handlers(settings, delivery.wake), name="facts")
    runtime.background(delivery.run_forever)
    runtime.publishes(NotificationSent, MessageDeadLettered)
    app = service_app(
        runtime,
        description="E-mails each participant what concerns it, in its language, exactly once: "
        "registration, suggestion digests, meeting requests and answers, agendas with calendar "
        "invitations, moves and cancellations, reminders, outcome requests, recordings. Reads "
        "registrations and matching's facts; publishes what was sent and what could not be.",
        router=api.router,
    )
    app.state.operator_digest = operator_digest(settings.operator_token)
    app.state.link_secret = delivery.link_secret
    app.state.wake = delivery.wake
    return app
