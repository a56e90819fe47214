"""Notifications settings (env prefix C2F_NOTIFICATIONS_; SMTP also from C2F_SMTP_*)."""

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import SettingsConfigDict

from c2f_shared.service import ServiceSettings


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"C2F_NOTIFICATIONS_{name}", f"C2F_{name}")


class Settings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="C2F_NOTIFICATIONS_", extra="ignore", populate_by_name=True)

    mongo_db: str = "c2f_notifications"
    consumer_group: str = "c2f-notifications"

    smtp_host: str = Field("127.0.0.1", validation_alias=_env("SMTP_HOST"))
    smtp_port: int = Field(2525, validation_alias=_env("SMTP_PORT"))
    smtp_username: str | None = Field(None, validation_alias=_env("SMTP_USERNAME"))
    smtp_password: str | None = Field(None, validation_alias=_env("SMTP_PASSWORD"))
    smtp_starttls: bool = Field(False, validation_alias=_env("SMTP_STARTTLS"))
    mail_from: str = Field("C2Future Match <noreply@c2future.example>", validation_alias=_env("MAIL_FROM"))

    @field_validator("smtp_username", "smtp_password", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    max_attempts: int = Field(8, description="SMTP attempts before a message is dead-lettered.")
    retry_base_s: float = Field(1.0, description="First retry delay; doubles each attempt, with jitter.")
