"""The words of every message in the partnership's six languages (catalogs in `i18n/`), and
dates, durations and lists written as each language writes them (Babel). English is the
fallback for a language or a phrase that is missing."""

import json
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, format_timedelta
from babel.lists import format_list

LANGUAGES = ("en", "es", "it", "bg", "sr", "el")
FALLBACK = "en"
# Serbian messages are written in Latin script, as in most business mail.
_LOCALES = {"sr": "sr_Latn"}


@cache
def catalog(language: str) -> dict[str, str]:
    try:
        text = resources.files("c2f_notifications").joinpath(f"i18n/{language}.json").read_text("utf-8")
    except FileNotFoundError:
        return {}
    loaded: dict[str, str] = json.loads(text)
    return loaded


def language_of(preferred: str | None) -> str:
    return preferred if preferred in LANGUAGES else FALLBACK


class Words:
    """Phrases, dates and lists in one language."""

    def __init__(self, language: str) -> None:
        self.language = language_of(language)
        self.locale = _LOCALES.get(self.language, self.language)

    def __call__(self, key: str, **values: object) -> str:
        phrase = catalog(self.language).get(key) or catalog(FALLBACK)[key]
        return phrase.format(**values)

    def when(self, moment: datetime, timezone: str) -> str:
        """e.g. "Tuesday, 16 March 2027, 09:20" in the venue's time zone."""
        local = moment.astimezone(ZoneInfo(timezone))
        day = format_date(local, "full", locale=self.locale)
        return f"{day}, {format_time(local, 'HH:mm', locale=self.locale)}"

    def lead(self, seconds: float) -> str:
        """e.g. "1 day", "15 minutes"."""
        return format_timedelta(timedelta(seconds=seconds), threshold=1.1, locale=self.locale)

    def join(self, items: list[str]) -> str:
        return format_list(items, locale=self.locale) if items else ""
