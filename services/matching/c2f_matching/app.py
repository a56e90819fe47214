"""Matching's process: consumers of registration's topics and the recommendations API.
Run with `uvicorn c2f_matching.app:create_app --factory`."""

import logging

from fastapi import FastAPI

from c2f_matching import api, handlers, meetings
from c2f_matching.config import Settings
from c2f_matching.embedder import EMBEDDINGS, E5Embedder
from c2f_matching.language import LanguageCentres
from c2f_matching.matcher import Matcher
from c2f_matching.profiles import Rosters
from c2f_matching.search import OfferIndex
from c2f_shared.events import MatchSuggested
from c2f_shared.service import Runtime
from c2f_shared.service.access import operator_digest
from c2f_shared.service.http import service_app

log = logging.getLogger("c2f.matching")
# Idle, automatic rescheduling looks this often for stale schedules it was not woken for (those
# another instance left when it died).
REPLAN_POLL_S = 15.0


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, service="matching")
    matcher = Matcher(E5Embedder(), LanguageCentres.shipped())
    offers = OfferIndex(matcher.model.dim, matcher.vectors_id)

    async def on_start(runtime: Runtime) -> None:
        await handlers.ensure_indexes(runtime.db)
        matcher.bind(runtime.db[EMBEDDINGS])
        await matcher.background()
        renewed = await handlers.refresh_vectors(runtime.db, matcher)
        if renewed:
            log.info("encoded %d company profiles again for %s", renewed, matcher.vectors_id)
        await offers.sync(runtime.db)

    runtime.on_start(on_start)

    async def replan() -> None:
        """Replan stale auto-rescheduled schedules when they fall due (sleeping until then, or
        until a schedule goes stale here), at least every REPLAN_POLL_S."""
        quiet = settings.reschedule_quiet_seconds
        while True:
            pause = 1.0
            try:
                await meetings.replan_stale(runtime, settings.reschedule_solver_seconds, quiet)
                pause = await meetings.next_replan_in(runtime, quiet, at_most=REPLAN_POLL_S)
            except Exception:  # the loop must outlive one bad round; the next one tries again
                log.exception("automatic rescheduling failed")
            # At least a second apart: a replan refused (changed meanwhile) is still due.
            await meetings.STALE.sleep(max(1.0, pause))

    runtime.background(replan)
    rosters = Rosters()
    # Sign-ups and companies, from lanes of different partitions, take turns in this process
    # rather than collide on an event's roster counter or a company's `company_events` and run
    # again (under load, batches of 50 collided and ran again for minutes: bench/load.py).
    runtime.consume(handlers.make_handlers(matcher, rosters), name="registrations", one_at_a_time=True)
    runtime.publishes(MatchSuggested, *meetings.PUBLISHES)
    app = service_app(
        runtime,
        description="Suggests who should meet whom at an event, across languages, with the reasons; "
        "takes meeting requests and answers, schedules the accepted meetings into slots and tables, "
        "and serves each participant's agenda (JSON, .ics, printable). Reads registrations; publishes "
        "match suggestions and the meeting lifecycle.",
        router=api.router,
    )
    app.state.matcher = matcher
    app.state.offers = offers

    async def rebuild() -> int:
        rosters.clear()
        replayed = await runtime.replay(forget=handlers.READ_MODEL)
        rosters.clear()
        await offers.reload(runtime.db)  # companies gone from the read model leave search too
        return replayed

    app.state.rebuild = rebuild
    app.state.link_secret = settings.link_secrets() or None
    app.state.operator_digest = operator_digest(settings.operator_token)
    return app
