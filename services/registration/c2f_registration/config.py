"""Registration settings (env prefix C2F_REGISTRATION_; the operator token also from C2F_OPERATOR_TOKEN)."""

import re
from typing import Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from c2f_shared.service import ServiceSettings
from c2f_shared.service.settings import KafkaTimeouts

# What registration reads from the topics (other instances' clusters, events and sign-up
# counts) is not waited for by anyone: a consumer that asks the broker for news every 10 ms
# (the embedded stack's "fast" timeouts) spends a tenth of the process on empty fetches.
FETCH_MAX_WAIT_MS = 100


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="C2F_REGISTRATION_", extra="ignore", populate_by_name=True)

    mongo_db: str = Field(
        "c2f_registration",
        description="This instance's own database; serving some clusters: `c2f_registration_<short names>`.",
    )
    consumer_group: str = Field(
        "c2f-registration",
        description="Kafka consumer group id; serving some clusters: `c2f-registration-<short names>`.",
    )

    clusters: str = Field(
        "",
        description="Short names of the clusters this instance serves, comma-separated "
        "(e.g. 'DTI'); empty: every cluster. Each instance has its own database.",
    )

    operator_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("C2F_REGISTRATION_OPERATOR_TOKEN", "C2F_OPERATOR_TOKEN"),
        description="Bearer token of the partnership's operators. Unset: no operator can sign in.",
    )

    @model_validator(mode="after")
    def _own_database_and_group_per_instance(self) -> Self:
        # An instance serving some clusters gets its own database and consumer group
        # (each instance must hear every event), unless they are set explicitly.
        if self.served():
            names = [re.sub(r"[^0-9a-z]+", "", name) or "cluster" for name in sorted(self.served())]
            if "mongo_db" not in self.model_fields_set:
                self.mongo_db = "c2f_registration_" + "_".join(names)
            if "consumer_group" not in self.model_fields_set:
                self.consumer_group = "c2f-registration-" + "-".join(names)
        return self

    def kafka_timeouts_ms(self) -> KafkaTimeouts:
        timeouts = super().kafka_timeouts_ms()
        return timeouts._replace(fetch_max_wait_ms=max(timeouts.fetch_max_wait_ms, FETCH_MAX_WAIT_MS))

    def served(self) -> frozenset[str]:
        """Case-folded short names this instance serves; empty means all."""
        return frozenset(name.strip().casefold() for name in self.clusters.split(",") if name.strip())
