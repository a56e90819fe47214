"""Settings every service shares; each service subclasses it with its own env prefix.

The addresses of the broker and the database are common to all services
(`C2F_KAFKA_BOOTSTRAP`, `C2F_MONGO_URI`); everything else is read with the
service's own prefix, e.g. `C2F_MATCHING_MONGO_DB`.
"""

from datetime import timedelta
from typing import Literal, NamedTuple

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

EMBEDDED_KAFKA = "127.0.0.1:19092"
EMBEDDED_MONGO = "mongodb://127.0.0.1:27217/?retryWrites=false&directConnection=true"


class KafkaTimeouts(NamedTuple):
    session_timeout_ms: int
    heartbeat_interval_ms: int
    rebalance_timeout_ms: int | None
    fetch_max_wait_ms: int
    request_timeout_ms: int
    metadata_max_age_ms: int
    idle_fetch_max_wait_ms: int  # how long a fetch waits once nothing has come for a while


# Short group timeouts make joins take ~1-2 s instead of 5-18 s on the embedded broker; a short
# request timeout and metadata age let clients recover soon after it restarts empty. Heartbeats
# every second (session 3 s) and fetches held up to 2.5 s once idle keep an idle stack from
# polling the broker hundreds of times a second (bench/idle.py).
FAST = KafkaTimeouts(3000, 1000, 1000, 10, 5000, 5000, 2500)
KAFKA_DEFAULTS = KafkaTimeouts(10_000, 3000, None, 500, 40_000, 300_000, 500)


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap: str = Field(
        EMBEDDED_KAFKA,
        validation_alias=AliasChoices("C2F_KAFKA_BOOTSTRAP"),
        description="Kafka bootstrap servers, comma-separated.",
    )
    mongo_uri: str = Field(
        EMBEDDED_MONGO,
        validation_alias=AliasChoices("C2F_MONGO_URI"),
        description="MongoDB connection string (the embedded server needs retryWrites=false).",
    )
    kafka_timeouts: Literal["fast", "standard"] = Field(
        "fast",
        validation_alias=AliasChoices("C2F_KAFKA_TIMEOUTS"),
        description=(
            "'fast': short group timeouts, so joins take ~1 s on the embedded broker; "
            "'standard': Kafka's defaults, for production clusters."
        ),
    )
    broker_loss_watch: bool = Field(
        False,
        validation_alias=AliasChoices("C2F_BROKER_LOSS_WATCH"),
        description=(
            "Check that the broker still holds what the outbox published, at start and every few "
            "seconds, and publish everything kept again if not. For a broker that keeps topics in "
            "memory: `c2f up` turns it on with its embedded broker. Off with Kafka."
        ),
    )
    outbox_keep_days: int = Field(
        7,
        ge=0,
        validation_alias=AliasChoices("C2F_OUTBOX_KEEP_DAYS"),
        description=(
            "Days a published event stays in the outbox, to be published again after a broker "
            "loss; 0 keeps it for good (`c2f up` with its embedded broker, so that a rebuild "
            "after a restart finds every event on the topics again)."
        ),
    )
    log_level: str = Field(
        "INFO",
        validation_alias=AliasChoices("C2F_LOG_LEVEL"),
        description="Log level (DEBUG, INFO, WARNING, ERROR).",
    )
    log_format: Literal["auto", "json", "console"] = Field(
        "auto",
        validation_alias=AliasChoices("C2F_LOG_FORMAT"),
        description=(
            "'json': one JSON object per line, with the correlation and event ids; "
            "'console': key=value text for a person; 'auto': console on a terminal, JSON otherwise."
        ),
    )
    traces: Literal["off", "console", "file", "otlp"] = Field(
        "off",
        validation_alias=AliasChoices("C2F_TRACES"),
        description=(
            "Where OpenTelemetry spans go: 'off'; 'console' (standard output); 'file' (JSON lines "
            "in C2F_TRACES_FILE, read by `c2f trace`); 'otlp' (OTLP over HTTP to "
            "OTEL_EXPORTER_OTLP_ENDPOINT, e.g. a collector or Jaeger)."
        ),
    )
    traces_file: str = Field(
        "traces/{service}.jsonl",
        validation_alias=AliasChoices("C2F_TRACES_FILE"),
        description="With C2F_TRACES=file: the file spans are appended to; {service} is the service's name.",
    )

    transactions_at_once: int = Field(
        8,
        ge=1,
        description="Transactions this process runs at once on the database; the rest wait their "
        "turn (the embedded database slows down for every session that ever ran a transaction: "
        "see c2f_shared/service/sessions.py).",
    )
    max_body_bytes: int = Field(1_048_576, description="Larger request bodies are refused with 413.")
    auth_failures_per_minute: int = Field(
        30,
        ge=1,
        description="An address refused (401/403) this many times in a minute, by any replica of the "
        "service, gets 429 until it slows down (counted in the service's database).",
    )

    mongo_db: str = Field(description="This service's own database.")
    consumer_group: str = Field(description="Kafka consumer group id of this service.")

    def outbox_keep(self) -> timedelta | None:
        """How long published events stay in the outbox (None: for good)."""
        return timedelta(days=self.outbox_keep_days) if self.outbox_keep_days else None

    def kafka_timeouts_ms(self) -> KafkaTimeouts:
        return FAST if self.kafka_timeouts == "fast" else KAFKA_DEFAULTS
