"""docs/configuration.md, written from the settings themselves: every environment variable
each service reads (its pydantic settings class), and those the `c2f` command reads.

`c2f config-reference` prints it; a unit test fails when the committed file differs.
"""

import inspect
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, NamedTuple, Union, get_args, get_origin, get_type_hints

import annotated_types
import typer
from pydantic import AliasChoices, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings
from typer.models import OptionInfo

from c2f_cli.config import ENVIRONMENT
from c2f_matching.config import Settings as MatchingSettings
from c2f_notifications.config import Settings as NotificationsSettings
from c2f_registration.config import Settings as RegistrationSettings
from c2f_reporting.config import Settings as ReportingSettings

REGENERATE = ".venv/bin/c2f config-reference --output docs/configuration.md"

SERVICE_SETTINGS: dict[str, type[BaseSettings]] = {
    "registration": RegistrationSettings,
    "matching": MatchingSettings,
    "notifications": NotificationsSettings,
    "reporting": ReportingSettings,
}


class Row(NamedTuple):
    """One line of a table: the variables (first one wins), type, default, description."""

    variables: tuple[str, ...]
    type: str
    default: str
    description: str | None


def env_names(settings: type[BaseSettings], name: str, field: FieldInfo) -> tuple[str, ...]:
    """The variables a field is read from, in order of precedence.

    An alias replaces the prefixed name (pydantic-settings does not add the prefix to it).
    """
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return tuple(str(choice) for choice in alias.choices if isinstance(choice, str))
    if isinstance(alias, str):
        return (alias,)
    return (f"{settings.model_config.get('env_prefix', '')}{name}".upper(),)


def description(settings: type[BaseSettings], name: str) -> str | None:
    """The field's description; a subclass that only changes a default keeps its parent's."""
    for cls in settings.__mro__:
        fields: dict[str, FieldInfo] | None = getattr(cls, "__pydantic_fields__", None)
        if fields and name in fields and fields[name].description:
            return fields[name].description
    return None


def type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " or ".join(f"`{choice}`" for choice in get_args(annotation))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in get_args(annotation) if a is not type(None))
    if annotation is SecretStr:
        return "secret"
    return str(getattr(annotation, "__name__", annotation))


def bounds(field: FieldInfo) -> str:
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    found = []
    for rule in field.metadata:
        if isinstance(
            rule, annotated_types.Ge | annotated_types.Gt | annotated_types.Le | annotated_types.Lt
        ):
            for attribute, sign in signs.items():
                if hasattr(rule, attribute):
                    found.append(f"{sign} {getattr(rule, attribute)}")
    return ", ".join(found)


def default_text(value: Any) -> str:
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


def settings_rows(settings: type[BaseSettings]) -> list[Row]:
    rows = []
    for name, field in settings.model_fields.items():
        kind = type_name(field.annotation)
        limits = bounds(field)
        rows.append(
            Row(
                env_names(settings, name, field),
                f"{kind}, {limits}" if limits else kind,
                default_text(field.get_default()),
                description(settings, name),
            )
        )
    return rows


def _commands(app: typer.Typer, path: str) -> Iterator[tuple[str, Callable[..., Any]]]:
    for command in app.registered_commands:
        if command.callback is not None:
            name = command.name or command.callback.__name__.replace("_", "-")
            yield f"{path} {name}", command.callback
    for group in app.registered_groups:
        if group.typer_instance is not None:
            yield from _commands(group.typer_instance, f"{path} {group.name}")


def option_rows(app: typer.Typer) -> list[Row]:
    """Command-line options that may also come from an environment variable."""
    rows = []
    for path, callback in _commands(app, "c2f"):
        signature = inspect.signature(callback)
        for name, hint in get_type_hints(callback, include_extras=True).items():
            option = next((m for m in getattr(hint, "__metadata__", ()) if isinstance(m, OptionInfo)), None)
            if option is None or not isinstance(option.envvar, str):
                continue
            flag = next(iter(option.param_decls or ()), "--" + name.replace("_", "-"))
            rows.append(
                Row(
                    (option.envvar,),
                    type_name(get_args(hint)[0]),
                    default_text(signature.parameters[name].default),
                    f"`{path} {flag}`: {option.help}",
                )
            )
    return rows


def stack_rows() -> list[Row]:
    return [Row((v.name,), v.type, default_text(v.default), v.description) for v in ENVIRONMENT]


def missing_descriptions() -> list[str]:
    """Settings without a description, as `Class.field`."""
    return [
        f"{settings.__module__}.{settings.__name__}.{name}"
        for settings in SERVICE_SETTINGS.values()
        for name in settings.model_fields
        if not description(settings, name)
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(rows: Iterable[Row]) -> list[str]:
    lines = ["| variable | type | default | description |", "|---|---|---|---|"]
    for row in rows:
        names = " or ".join(f"`{name}`" for name in row.variables)
        lines.append(
            f"| {names} | {_cell(row.type)} | {_cell(row.default)} | {_cell(row.description or '')} |"
        )
    return lines


INTRO = f"""\
# Configuration

<!-- Generated from the settings classes by `c2f config-reference`: do not edit by hand.
     To change a description, change the setting's `description=` in the code, then run
     {REGENERATE} -->

Everything is configured through environment variables; the defaults run the embedded
stack on 127.0.0.1 (`make up`). Each service reads its settings with its own prefix
(`C2F_REGISTRATION_`, `C2F_MATCHING_`, `C2F_NOTIFICATIONS_`, `C2F_REPORTING_`); a few
are shared by every service and have no prefix (`C2F_KAFKA_BOOTSTRAP`, `C2F_MONGO_URI`,
`C2F_OPERATOR_TOKEN`, …). Where a row names two variables, the first wins: set
`C2F_OPERATOR_TOKEN` once for every service, or `C2F_MATCHING_OPERATOR_TOKEN` for
matching alone. Names are not case-sensitive.

Secrets (the operator token, the link secret, the SMTP password) come from the
environment, never from the repository.
"""

STACK = """\
## The `c2f` command and the local stack

What `c2f up` starts, and where every `c2f` command looks for the services. `c2f up`
hands the broker, database and SMTP addresses, the operator token and the link secret on
to the services it starts.
"""

COMPOSE = """\
## Docker Compose

`docker-compose.yml` reads the variables above from `.env`, and a few of its own
(`C2F_SECRETARIAT_CLUSTERS`, `C2F_KAFKA_PARTITIONS`, `C2F_KAFKA_REPLICATION_FACTOR`,
`C2F_MAILPIT_UI_PORT`, `C2F_VERSION`): [.env.example](../.env.example) describes them. See
[operations.md](operations.md) for how they are used.
"""


def reference(app: typer.Typer) -> str:
    """The whole of docs/configuration.md; `app` is the `c2f` command, for its options."""
    lines = [INTRO]
    for service, settings in SERVICE_SETTINGS.items():
        lines += [f"## {service}", "", f"`{settings.__module__}.{settings.__name__}`", ""]
        lines += [*table(settings_rows(settings)), ""]
    lines += [STACK, *table(stack_rows() + option_rows(app)), "", COMPOSE]
    return "\n".join(lines).rstrip("\n") + "\n"
