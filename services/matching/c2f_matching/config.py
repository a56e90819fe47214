"""Matching settings (env prefix C2F_MATCHING_; the operator token also from C2F_OPERATOR_TOKEN)."""

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from c2f_shared import links
from c2f_shared.service import ServiceSettings


class Settings(ServiceSettings, links.LinkSecrets):
    model_config = SettingsConfigDict(env_prefix="C2F_MATCHING_", extra="ignore", populate_by_name=True)

    mongo_db: str = "c2f_matching"
    consumer_group: str = "c2f-matching"
    operator_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("C2F_MATCHING_OPERATOR_TOKEN", "C2F_OPERATOR_TOKEN"),
        description="Bearer token of the partnership's operators (organisers' views).",
    )
    reschedule_quiet_seconds: float = Field(
        5.0, ge=0, description="Auto-reschedule once an event's changes have paused this long"
    )
    reschedule_solver_seconds: float = Field(
        5.0, ge=0, description="Solver time for an automatic new version"
    )
    link_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("C2F_MATCHING_LINK_SECRET", "C2F_LINK_SECRET"),
        description="Checks the accept/decline/outcome links in notification e-mails.",
    )
    link_secrets_old: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("C2F_MATCHING_LINK_SECRETS_OLD", "C2F_LINK_SECRETS_OLD"),
        description="Former link secrets, comma-separated, newest first: links signed with them still "
        "work (rotation). Keep one until the links it signed have expired (a year at most).",
    )
