"""The envelope every Kafka message carries: who said what, when, and in answer to what."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from c2f_shared.events import Event


class UnknownEventType(ValueError):
    """The envelope names an event type this build does not know."""


class Envelope(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str = Field(description="Unique id of this fact; consumers deduplicate on it.")
    type: str = Field(description="Event type, e.g. CompanyRegistered.")
    schema_version: int = Field(ge=1)
    occurred_at: datetime
    correlation_id: str = Field(description="Id of the request or event chain this fact belongs to.")
    producer: str = Field(description="Service that published it.")
    key: str = Field(description="Aggregate id; also the Kafka message key.")
    data: dict[str, Any]

    @classmethod
    def wrap(
        cls,
        event: Event,
        *,
        producer: str,
        correlation_id: str,
        event_id: str | None = None,
    ) -> Envelope:
        """Wrap `event`; pass a deterministic `event_id` when the same fact may be re-derived."""
        return cls(
            event_id=event_id or str(uuid.uuid4()),
            type=event.TYPE,
            schema_version=event.VERSION,
            occurred_at=datetime.now(UTC),
            correlation_id=correlation_id,
            producer=producer,
            key=event.aggregate_id(),
            data=event.model_dump(mode="json"),
        )

    def open(self) -> Event:
        """The typed event inside; raises UnknownEventType or pydantic.ValidationError."""
        from c2f_shared.events import EVENT_TYPES

        try:
            model = EVENT_TYPES[self.type]
        except KeyError:
            raise UnknownEventType(f"unknown event type {self.type!r}") from None
        return model.model_validate(self.data)
