"""Where the embedded stack listens and keeps its data, from C2F_* environment variables.

An address given for the broker, the database or SMTP (C2F_KAFKA_BOOTSTRAP,
C2F_MONGO_URI, C2F_SMTP_HOST) means "use that server": nothing embedded is
started for it.
"""

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

SERVICES = ("registration", "matching", "notifications", "reporting")
DEFAULT_SERVICE_PORTS = {"registration": 8001, "matching": 8002, "notifications": 8003, "reporting": 8004}


class Variable(NamedTuple):
    """An environment variable `StackConfig.from_env` reads, for docs/configuration.md."""

    name: str
    type: str
    default: str | int | None
    description: str


ENVIRONMENT: tuple[Variable, ...] = (
    Variable(
        "C2F_HOME",
        "path",
        ".c2f",
        "Where `c2f up` keeps the database, the mail, the logs, the operator token and the link secret.",
    ),
    Variable(
        "C2F_KAFKA_BOOTSTRAP",
        "str",
        None,
        "An existing Kafka cluster: if set, `c2f up` starts no broker (the services read it too).",
    ),
    Variable("C2F_KAFKA_PORT", "int", 19092, "Port of the embedded broker."),
    Variable(
        "C2F_MONGO_URI",
        "str",
        None,
        "An existing MongoDB, which must be a replica set (the services use transactions): "
        "if set, `c2f up` starts no database.",
    ),
    Variable(
        "C2F_MONGO_PORT",
        "int",
        27217,
        "Port of the first embedded database (registration's); each service has its own database "
        "server, on the ports after it in the order registration, matching, notifications, reporting.",
    ),
    Variable("C2F_SMTP_HOST", "str", None, "An existing SMTP server: if set, `c2f up` starts no SMTP sink."),
    Variable("C2F_SMTP_PORT", "int", 2525, "Port of the SMTP sink, or of the server C2F_SMTP_HOST names."),
    Variable(
        "C2F_OPERATOR_TOKEN",
        "secret",
        None,
        "The operators' bearer token; unset: the local stack's own, made once in $C2F_HOME/operator-token.",
    ),
    Variable(
        "C2F_LINK_SECRET",
        "secret",
        None,
        "Signs the links in e-mails; unset: the local stack's own, made once in $C2F_HOME/link-secret.",
    ),
    *(
        Variable(
            f"C2F_{name.upper()}_PORT", "int", port, f"HTTP port of {name}: where `c2f` runs and finds it."
        )
        for name, port in DEFAULT_SERVICE_PORTS.items()
    ),
)


def database_ports_from(first: int) -> dict[str, int]:
    """Each service's database port: `first` for registration, then one each in SERVICES' order."""
    return {name: first + i for i, name in enumerate(SERVICES)}


def _int(env: dict[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{name} must be a port number, not {value!r}") from None


@dataclass(frozen=True)
class StackConfig:
    home: Path
    host: str = "127.0.0.1"
    kafka_port: int = 19092
    # One embedded database server per service (each service owns its database): a server
    # shared by all four made each service's statements wait for the others' (docs/benchmarks.md).
    database_ports: dict[str, int] = field(default_factory=lambda: database_ports_from(27217))
    smtp_port: int = 2525
    external_kafka: str | None = None
    external_mongo: str | None = None
    external_smtp: str | None = None
    given_operator_token: str | None = None
    given_link_secret: str | None = None
    service_ports: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SERVICE_PORTS))
    # Where the services send OpenTelemetry spans (C2F_TRACES): off, console, file (in traces_dir), otlp.
    traces: str = "off"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "StackConfig":
        env = dict(os.environ if env is None else env)
        return cls(
            home=Path(env.get("C2F_HOME") or ".c2f").resolve(),
            kafka_port=_int(env, "C2F_KAFKA_PORT", 19092),
            database_ports=database_ports_from(_int(env, "C2F_MONGO_PORT", 27217)),
            smtp_port=_int(env, "C2F_SMTP_PORT", 2525),
            external_kafka=env.get("C2F_KAFKA_BOOTSTRAP") or None,
            external_mongo=env.get("C2F_MONGO_URI") or None,
            external_smtp=env.get("C2F_SMTP_HOST") or None,
            given_operator_token=env.get("C2F_OPERATOR_TOKEN") or None,
            given_link_secret=env.get("C2F_LINK_SECRET") or None,
            traces=env.get("C2F_TRACES") or "off",
            service_ports={
                name: _int(env, f"C2F_{name.upper()}_PORT", port)
                for name, port in DEFAULT_SERVICE_PORTS.items()
            },
        )

    @classmethod
    def on_free_ports(cls, home: Path, traces: str = "off", **external: str | None) -> "StackConfig":
        """A stack that collides with nothing else on this machine (tests, benchmarks)."""
        from c2f_cli.processes import free_port

        return cls(
            home=home,
            kafka_port=free_port(),
            database_ports={name: free_port() for name in SERVICES},
            smtp_port=free_port(),
            service_ports={name: free_port() for name in SERVICES},
            external_kafka=external.get("external_kafka"),
            external_mongo=external.get("external_mongo"),
            external_smtp=external.get("external_smtp"),
            traces=traces,
        )

    @property
    def traces_dir(self) -> Path:
        """Where the services write their spans with C2F_TRACES=file (one file each)."""
        return self.home / "traces"

    @property
    def kafka_bootstrap(self) -> str:
        return self.external_kafka or f"{self.host}:{self.kafka_port}"

    def mongo_uri_of(self, service: str) -> str:
        """The database server `service` keeps its database on (C2F_MONGO_URI, when given, for all)."""
        return self.external_mongo or (
            f"mongodb://{self.host}:{self.database_ports[service]}/?retryWrites=false&directConnection=true"
        )

    @property
    def scratch_mongo_uri(self) -> str:
        """A database server for databases no service owns (tests' and benchmarks' own):
        registration's."""
        return self.mongo_uri_of(SERVICES[0])

    def mongo_uri_for_database(self, name: str) -> str:
        """The server that holds the database `name`: `c2f_<service>` on that service's, any
        other on the scratch one."""
        owner = name.removeprefix("c2f_")
        if name.startswith("c2f_") and owner in SERVICES:
            return self.mongo_uri_of(owner)
        return self.scratch_mongo_uri

    @property
    def smtp_host(self) -> str:
        return self.external_smtp or self.host

    @property
    def maildir(self) -> Path:
        return self.home / "mail"

    def operator_token(self) -> str:
        """C2F_OPERATOR_TOKEN, or the local stack's own, made once in $C2F_HOME/operator-token."""
        return self.given_operator_token or self._secret("operator-token")

    def link_secret(self) -> str:
        """C2F_LINK_SECRET (signs links in e-mails), or the local stack's own in $C2F_HOME."""
        return self.given_link_secret or self._secret("link-secret")

    def _secret(self, name: str) -> str:
        path = self.home / name
        if not path.exists():
            self.home.mkdir(parents=True, exist_ok=True)
            path.touch(mode=0o600)
            path.write_text(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def service_url(self, name: str) -> str:
        return f"http://{self.host}:{self.service_ports[name]}"
