"""Reporting's collections: projections of every service's facts, one document per aggregate
(`projections`), which a rebuild empties and fills again from the topics."""

CLUSTERS = "clusters"
COMPANIES = "companies"
EVENTS = "events"
PARTICIPANTS = "participants"
MATCH_SUGGESTIONS = "match_suggestions"
NOTIFICATIONS = "notifications"  # one per mail sent (NotificationSent)
# MessageDeadLettered from every service ("dead_letters" is reporting's own, the runtime's).
DEAD_LETTERS_SEEN = "dead_letters_seen"
AGREEMENTS = "agreements"
MEETINGS = "meetings"  # each meeting's latest state, from the meeting facts
OUTCOMES = "outcomes"  # one per (meeting, participant) that reported
ERASURES = "erasures"  # ids of erased companies, and when (no personal data)

# Every collection reporting keeps: a rebuild empties them all and replays the topics.
COLLECTIONS = (
    CLUSTERS,
    COMPANIES,
    EVENTS,
    PARTICIPANTS,
    MATCH_SUGGESTIONS,
    NOTIFICATIONS,
    DEAD_LETTERS_SEEN,
    AGREEMENTS,
    MEETINGS,
    OUTCOMES,
    ERASURES,
)
