"""Reporting settings (env prefix C2F_REPORTING_)."""

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import SettingsConfigDict

from c2f_shared.service import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="C2F_REPORTING_", extra="ignore", populate_by_name=True)

    mongo_db: str = "c2f_reporting"
    consumer_group: str = "c2f-reporting"

    operator_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("C2F_REPORTING_OPERATOR_TOKEN", "C2F_OPERATOR_TOKEN"),
        description="Bearer token of the partnership's operators (rebuilds).",
    )
