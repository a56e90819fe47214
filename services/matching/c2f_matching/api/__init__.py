"""Matching's HTTP API: recommendations and search, meeting requests, the schedule, agendas."""

from fastapi import APIRouter

from c2f_matching.api import act, agenda, meetings, recommendations

router = APIRouter()
router.include_router(recommendations.router)
router.include_router(meetings.router)
router.include_router(agenda.router)
router.include_router(act.router)
