"""Kafka topic names: one topic per aggregate, keyed by the aggregate's id."""

from typing import Final

CLUSTERS: Final = "c2f.registration.clusters"
COMPANIES: Final = "c2f.registration.companies"
EVENTS: Final = "c2f.registration.events"
PARTICIPANTS: Final = "c2f.registration.participants"
MATCH_SUGGESTIONS: Final = "c2f.matching.suggestions"
MEETINGS: Final = "c2f.matching.meetings"  # requests, answers, schedules and outcomes, keyed by event
NOTIFICATIONS_SENT: Final = "c2f.notifications.sent"
DEAD_LETTERS: Final = "c2f.dead-letters"

ALL: Final = (
    CLUSTERS,
    COMPANIES,
    EVENTS,
    PARTICIPANTS,
    MATCH_SUGGESTIONS,
    MEETINGS,
    NOTIFICATIONS_SENT,
    DEAD_LETTERS,
)

# Consumers in one group share a topic's partitions: this bounds how far each
# service scales out on one topic (on the embedded stack; Compose and Kubernetes make
# their topics with more, see docs/operations.md). 4 is also what the embedded broker
# gives a topic it creates by itself, as it does after a restart: the same number keeps
# every key on the partition its consumers expect.
PARTITIONS: Final = 4
