"""Registration settings (env prefix C2F_REGISTRATION_)."""

from pydantic_settings import SettingsConfigDict

from c2f_shared.service import ServiceSettings


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="C2F_REGISTRATION_", extra="ignore", populate_by_name=True)

    mongo_db: str = "c2f_registration"
    consumer_group: str = "c2f-registration"
