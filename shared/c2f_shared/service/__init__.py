"""Plumbing every service needs to be on the wire: settings, broker, inbox/outbox, health.

A service builds one `Runtime` from its settings, registers its consumers on it,
and serves HTTP through FastAPI with the runtime's lifespan.
"""

from c2f_shared.service.runtime import Runtime, UnitOfWork
from c2f_shared.service.settings import ServiceSettings

__all__ = ["Runtime", "ServiceSettings", "UnitOfWork"]
