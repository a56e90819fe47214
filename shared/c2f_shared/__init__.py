"""What crosses the wire between C2Future Match services: envelope, events, topics.

`c2f_shared.service` holds the plumbing every service needs to be on that wire
(settings, broker, inbox and outbox, health checks); services never import each other.
"""
