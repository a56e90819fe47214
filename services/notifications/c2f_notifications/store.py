"""Notifications' collections."""

# Read model of other services' facts: only what a message needs.
RECIPIENTS = "recipients"  # participants: name, e-mail, language, consent, preferences
EVENTS = "events"
COMPANIES = "companies"  # names and countries only
CLUSTERS = "clusters"
MEETINGS = "meetings"  # parties, status, placement, sequence
# Notifications' own state.
OUTGOING = "outgoing"  # one document per (kind, fact, recipient): the dedupe key is its _id
TIMERS = "timers"  # digests, reminders, nudges and outcome requests still to come
DIGEST_ITEMS = "digest_items"  # suggestions waiting for a participant's next digest
WEBHOOKS = "webhooks"  # a cluster's endpoint and signing key
ERASURES = "erasures"  # ids of erased companies and of their participants, and when (no personal data)
