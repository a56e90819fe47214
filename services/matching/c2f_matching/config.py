"""Matching settings (env prefix C2F_MATCHING_)."""

from pydantic_settings import SettingsConfigDict

from c2f_shared.service import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="C2F_MATCHING_", extra="ignore", populate_by_name=True)

    mongo_db: str = "c2f_matching"
    consumer_group: str = "c2f-matching"
