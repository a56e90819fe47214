"""Notifications settings (env prefix C2F_NOTIFICATIONS_; SMTP also from C2F_SMTP_*)."""

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from c2f_shared import links
from c2f_shared.service import ServiceSettings


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"C2F_NOTIFICATIONS_{name}", f"C2F_{name}")


class Settings(ServiceSettings, links.LinkSecrets):
    model_config = SettingsConfigDict(env_prefix="C2F_NOTIFICATIONS_", extra="ignore", populate_by_name=True)

    mongo_db: str = "c2f_notifications"
    consumer_group: str = "c2f-notifications"

    smtp_host: str = Field(
        "127.0.0.1", validation_alias=_env("SMTP_HOST"), description="SMTP server to send through."
    )
    smtp_port: int = Field(2525, validation_alias=_env("SMTP_PORT"), description="SMTP server's port.")
    smtp_username: str | None = Field(
        None, validation_alias=_env("SMTP_USERNAME"), description="SMTP login; unset or empty: no login."
    )
    smtp_password: str | None = Field(
        None,
        validation_alias=_env("SMTP_PASSWORD"),
        description="SMTP password (a secret: from the environment).",
    )
    smtp_starttls: bool = Field(
        False,
        validation_alias=_env("SMTP_STARTTLS"),
        description="Upgrade the SMTP connection with STARTTLS.",
    )
    mail_from: str = Field(
        "C2Future Match <noreply@c2future.example>",
        validation_alias=_env("MAIL_FROM"),
        description="Sender of every e-mail.",
    )

    @field_validator("smtp_username", "smtp_password", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    max_attempts: int = Field(8, description="SMTP attempts before a message is dead-lettered.")
    retry_base_s: float = Field(1.0, description="First retry delay; doubles each attempt, with jitter.")

    # How fast messages go out.
    delivery_workers: int = Field(
        8,
        ge=1,
        description="Messages sent at once by one instance; each sender keeps its own SMTP connection. "
        "A kill of the instance can send again the one mail each sender has in hand.",
    )
    delivery_batch: int = Field(
        32,
        ge=1,
        description="Due messages claimed (leased) in one write; more than the senders keeps them busy.",
    )
    delivery_gather_s: float = Field(
        0.25,
        ge=0,
        description="Once the queue is caught up, wait at least this long between claims, so messages "
        "queued one by one go out in batches (fewer database round trips) instead of one claim each.",
    )
    smtp_idle_s: float = Field(
        30.0,
        description="An SMTP connection unused this long is closed and opened afresh before the next mail "
        "(servers drop idle clients).",
    )

    # Who may see the queue and re-drive dead letters, and how links in mails are signed.
    operator_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("C2F_NOTIFICATIONS_OPERATOR_TOKEN", "C2F_OPERATOR_TOKEN"),
        description="Bearer token of the partnership's operators (the queue, re-drives, webhooks).",
    )
    link_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("C2F_NOTIFICATIONS_LINK_SECRET", "C2F_LINK_SECRET"),
        description="Signs the accept/decline/outcome/unsubscribe links; shared with matching.",
    )
    link_secrets_old: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("C2F_NOTIFICATIONS_LINK_SECRETS_OLD", "C2F_LINK_SECRETS_OLD"),
        description="Former link secrets, comma-separated, newest first: links signed with them still "
        "work (rotation); new links are signed with the link secret. Keep one until the links it "
        "signed have expired (a year at most).",
    )

    public_matching_url: str = Field(
        "http://127.0.0.1:8002",
        validation_alias=_env("PUBLIC_MATCHING_URL"),
        description="Where accept, decline and outcome links in e-mails point (matching's address).",
    )
    public_notifications_url: str = Field(
        "http://127.0.0.1:8003",
        validation_alias=_env("PUBLIC_NOTIFICATIONS_URL"),
        description="Where unsubscribe and preference links in e-mails point (this service's address).",
    )

    # When messages go out.
    digest_hours: float = Field(24, description="At most one suggestions digest per participant per period.")
    digest_delay_seconds: float = Field(
        60, description="Gather suggestions this long before the first digest."
    )
    reminders: str = Field("1d,15m", description="Reminders before each meeting, e.g. '1d,15m' (d, h, m, s).")
    nudge_after_hours: float = Field(48, description="Remind an invitee of a request still unanswered.")
    outcome_after_hours: float = Field(2, description="Ask for outcomes this long after the event ends.")

    def reminder_offsets(self) -> list[int]:
        """The reminder lead times, in seconds, longest first."""
        units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
        offsets = []
        for part in filter(None, (p.strip() for p in self.reminders.split(","))):
            offsets.append(int(float(part[:-1]) * units[part[-1]]))
        return sorted(offsets, reverse=True)

    @field_validator("reminders")
    @classmethod
    def _valid_reminders(cls, value: str) -> str:
        for part in filter(None, (p.strip() for p in value.split(","))):
            if part[-1:] not in ("d", "h", "m", "s") or not part[:-1].replace(".", "", 1).isdigit():
                raise ValueError(f"reminder {part!r}: write a number and d, h, m or s, e.g. 1d,15m")
        return value
