"""The words of every message in the partnership's six languages, from gettext catalogs
(`locale/<language>/LC_MESSAGES/messages.po`, compiled to the `.mo` files beside them), with
plural forms; and dates, durations and lists written as each language writes them (Babel).
English is the fallback for a language or a phrase that is missing.

A phrase is named by a key ("meeting_request.subject"), which is its msgid; English is a
catalog like the others. Keys are extracted from the code and the templates with Babel
(`babel.cfg`); after changing phrases, run from services/notifications:

    pybabel extract -F babel.cfg -k t -k plural:1,1 -k N_ --no-location --sort-output \
        -o c2f_notifications/locale/messages.pot .
    pybabel update -i c2f_notifications/locale/messages.pot -d c2f_notifications/locale -N
    pybabel compile -d c2f_notifications/locale

and commit the .po and .mo files (a test checks that the .mo files match the .po files)."""

import gettext
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_time, format_timedelta
from babel.lists import format_list
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("en", "es", "it", "bg", "sr", "el")
FALLBACK = "en"
DOMAIN = "messages"
# Serbian messages are written in Latin script, as in most business mail.
_LOCALES = {"sr": "sr_Latn"}


def N_(key: str) -> str:
    """Marks a phrase's key for extraction where it is looked up later (by a variable)."""
    return key


def locale_dir() -> str:
    return str(resources.files("c2f_notifications").joinpath("locale"))


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The language's compiled catalog, falling back to English for what it lacks."""
    loaded: gettext.NullTranslations = Translations.load(locale_dir(), [language], DOMAIN)
    if language != FALLBACK:
        loaded.add_fallback(translations(FALLBACK))
    return loaded


@cache
def catalog(language: str) -> dict[str, str | tuple[str, ...]]:
    """The language's phrases by key, as its .po file has them (a plural phrase: every form)."""
    path = Path(locale_dir()) / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return {}
    with path.open("rb") as po:
        messages = read_po(po, locale=_LOCALES.get(language, language))
    return {
        (m.id if isinstance(m.id, str) else m.id[0]): (
            tuple(m.string) if isinstance(m.string, list | tuple) else m.string or ""
        )
        for m in messages
        if m.id
    }


def language_of(preferred: str | None) -> str:
    return preferred if preferred in LANGUAGES else FALLBACK


class Words:
    """Phrases, dates and lists in one language."""

    def __init__(self, language: str) -> None:
        self.language = language_of(language)
        self.locale = _LOCALES.get(self.language, self.language)

    def __call__(self, key: str, **values: object) -> str:
        phrase = translations(self.language).gettext(key)
        if phrase == key:
            raise KeyError(f"no phrase {key!r} in the catalogs")
        return phrase.format(**values)

    def plural(self, key: str, count: int, **values: object) -> str:
        """The phrase in the form the language uses for `count` (e.g. "1 partner", "2 partners");
        `{count}` in it is the number."""
        phrase = translations(self.language).ngettext(key, key, count)
        if phrase == key:
            raise KeyError(f"no phrase {key!r} in the catalogs")
        return phrase.format(count=count, **values)

    # The gettext name, for the templates (jinja2.ext.i18n).
    gettext = __call__

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
