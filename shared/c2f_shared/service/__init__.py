"""Plumbing every service needs to be on the wire: settings, broker, inbox/outbox, health.

A service builds one `Runtime` from its settings, registers its consumer's handlers on it
(`HANDLERS: dict[type[Event], Handler]`), and serves HTTP through FastAPI with the runtime's
lifespan. See runtime.py for which module does what.
"""

from c2f_shared.service.pipeline import Handler, Handlers
from c2f_shared.service.runtime import Runtime
from c2f_shared.service.settings import ServiceSettings
from c2f_shared.service.unit_of_work import UnitOfWork

__all__ = ["Handler", "Handlers", "Runtime", "ServiceSettings", "UnitOfWork"]
