"""The deployment files, checked without Docker or a cluster.

- The Makefile: `make up` needs only what the platform runs on (Pango for the PDFs), the
  tests' Chromium and Poppler come with `make test` and `make install`; Python and venv are
  checked first.
- docker-compose.yml against the Compose specification's JSON schema (vendored by
  check-jsonschema, so offline), and against what the services actually read: every
  C2F_* variable set in it is a setting some service has, every ${VARIABLE} it uses is
  documented in .env.example, registration runs once per cluster with its own database,
  each image is built by one service, MongoDB is healthy once it has a primary.
- deploy/Dockerfile through hadolint, and the properties operators rely on (multi-stage,
  non-root, HEALTHCHECK on /readyz).
- deploy/kubernetes/ against the Kubernetes 1.37 schemas (kubernetes-validate, strict), and
  KEDA's ScaledObjects against the consumer groups and partitions they scale on; each overlay
  rendered by `kubectl kustomize` where kubectl is installed; the lag alerts on the brokers'
  lag (kafka-exporter, in Compose and Kubernetes alike).
- Compose's and Kubernetes' grace periods against the worst-case shutdown in the code.
"""

import importlib
import importlib.resources
import inspect
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import AliasChoices
from pydantic_settings import BaseSettings

from c2f_matching.config import Settings as MatchingSettings
from c2f_notifications import delivery
from c2f_notifications.config import Settings as NotificationsSettings
from c2f_registration.config import Settings as RegistrationSettings
from c2f_reporting.config import Settings as ReportingSettings
from c2f_shared import topics
from c2f_shared.service.metrics import Metrics
from c2f_shared.service.runtime import SHUTDOWN_SECONDS, Runtime
from c2f_shared.service.serve import GRACEFUL_SECONDS

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
OVERLAYS = KUBERNETES / "overlays"
REGISTRY = "set-your-registry.invalid/c2future-match/"
SETTINGS: dict[str, type[BaseSettings]] = {
    "registration": RegistrationSettings,
    "matching": MatchingSettings,
    "notifications": NotificationsSettings,
    "reporting": ReportingSettings,
}
SCALED = ("matching", "notifications", "reporting")
# Read by the OpenTelemetry SDK's exporter rather than by a settings class.
TRACING = {"OTEL_EXPORTER_OTLP_ENDPOINT"}


def env_names(settings: type[BaseSettings]) -> set[str]:
    """The environment variables a settings class reads."""
    prefix = settings.model_config.get("env_prefix", "")
    names = set()
    for name, field in settings.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names |= {str(choice) for choice in alias.choices}
        else:
            names.add(f"{prefix}{name}".upper())
    return names


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def service_of(definition: dict[str, Any]) -> str | None:
    """Which of our services a Compose service runs (its image), None for others and jobs."""
    found = re.fullmatch(r"c2future-match/(\w+):.*", definition.get("image", ""))
    return found.group(1) if found and "command" not in definition else None


def shutdown_budget_s() -> float:
    """The longest a service may take to stop after SIGTERM: c2f-serve drains requests, then
    the runtime waits a bounded time for each of its steps (its tasks, among them the mail
    senders giving back their claims; each consumer's lanes; the broker; the offset probe;
    the database). Each service has one consumer."""
    source = inspect.getsource(Runtime._shut_down)
    steps = source.count("_bounded(") + source.count("timeout=SHUTDOWN_SECONDS")
    assert steps >= 5, source  # the count follows the code
    assert delivery.GIVE_BACK_S < SHUTDOWN_SECONDS  # giving back fits in the tasks' wait
    return GRACEFUL_SECONDS + steps * SHUTDOWN_SECONDS


def make(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), *arguments],
        capture_output=True,
        text=True,
        check=False,
    )


def installed_venv(path: Path, *stamps: str) -> Path:
    """A virtual environment directory that make takes as installed (its stamps are newer
    than the requirements they were made from)."""
    path.mkdir()
    for stamp in stamps:
        (path / stamp).touch()
    return path


TEST_TOOLS = re.compile(r"chromium|poppler|pdftoppm|playwright", re.IGNORECASE)


def test_make_up_runs_the_platform_and_installs_none_of_the_tests_tools(tmp_path: Path) -> None:
    venv = installed_venv(tmp_path / "venv", ".installed", ".pdf-libraries")
    # As on a machine without Chromium or Poppler: the tests would install them, `up` does not.
    absent = f"SYSTEM_TOOLS={tmp_path}/chromium {tmp_path}/pdftoppm"
    up = make("-n", "up", f"VENV={venv}", absent)
    assert up.returncode == 0, up.stderr
    assert up.stdout.splitlines() == [f"{venv}/bin/c2f up"]
    test = make("-n", "test", f"VENV={venv}", absent)
    assert "apt-get install -y -qq --no-install-recommends chromium poppler-utils" in test.stdout
    # The whole suite, in a process per core (tests/conftest.py groups the tests).
    assert test.stdout.rstrip().endswith(f"{venv}/bin/python -m pytest -n auto --maxprocesses 2")
    install = make("-n", "install", f"VENV={venv}", absent)
    assert "chromium poppler-utils" in install.stdout


def test_make_up_installs_pango_alone_when_weasyprint_cannot_load_it(tmp_path: Path) -> None:
    venv = installed_venv(tmp_path / "venv", ".installed")
    up = make("-n", "up", f"VENV={venv}", f"SYSTEM_TOOLS={tmp_path}/chromium")
    assert up.returncode == 0, up.stderr
    assert f"{venv}/bin/python -c 'import weasyprint'" in up.stdout
    assert "apt-get install -y -qq --no-install-recommends libpango-1.0-0 libpangoft2-1.0-0" in up.stdout
    assert "brochure PDF" in up.stdout  # without it, everything but the PDF runs, and it says so
    assert not TEST_TOOLS.search(up.stdout), up.stdout
    assert up.stdout.rstrip().endswith(f"{venv}/bin/c2f up")


def test_apt_gets_messages_are_shown() -> None:
    for line in MAKEFILE.read_text().splitlines():
        if re.search(r"apt-get (install|update)", line):
            assert ">/dev/null" not in line and "2>" not in line, line


def fake_python(path: Path, script: str) -> Path:
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    return path


def test_python_3_11_and_venv_are_checked_first_with_a_clear_message(tmp_path: Path) -> None:
    old = fake_python(tmp_path / "python3.10", 'case "$1" in -V) echo "Python 3.10.12";; *) exit 1;; esac\n')
    result = make("up", f"PYTHON={old}", f"VENV={tmp_path}/venv")
    assert result.returncode != 0
    assert "needs Python 3.11 or newer" in result.stdout and "Python 3.10.12" in result.stdout
    assert not (tmp_path / "venv").exists()
    # Debian's python3 without the python3-venv package has no ensurepip.
    no_venv = fake_python(
        tmp_path / "python3", f'case "$2" in *ensurepip*) exit 1;; esac\nexec {sys.executable} "$@"\n'
    )
    result = make("up", f"PYTHON={no_venv}", f"VENV={tmp_path}/venv")
    assert result.returncode != 0
    assert "install python3-venv" in result.stdout
    assert not (tmp_path / "venv").exists()
    result = make("up", f"PYTHON={tmp_path}/python9", f"VENV={tmp_path}/venv")
    assert result.returncode != 0 and "python9 not found" in result.stdout


def test_compose_file_follows_the_compose_specification() -> None:
    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(compose(), schema)
    # And the validator does catch mistakes, e.g. a misspelt key.
    broken = compose()
    broken["services"]["kafka"]["helthcheck"] = broken["services"]["kafka"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError, match="helthcheck"):
        jsonschema.validate(broken, schema)


def test_compose_runs_real_kafka_and_mongodb_with_pinned_images() -> None:
    services = compose()["services"]
    for name in ("kafka", "mongo", "mailpit", "jaeger", "kafka-exporter"):
        image = services[name]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: pin a full version, not {image}"
        assert "healthcheck" in services[name] or name in ("mailpit", "jaeger", "kafka-exporter")
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft
    assert services["mongo"]["image"].startswith("mongo:")
    assert "--replSet" in services["mongo"]["command"]  # transactions need a replica set
    assert set(compose()["volumes"]) >= {"kafka-data", "mongo-data"}


def test_mongodb_is_healthy_only_once_its_replica_set_has_a_primary() -> None:
    *command, script = compose()["services"]["mongo"]["healthcheck"]["test"]
    assert command == ["CMD", "mongosh", "--quiet", "--eval"]
    # First start: the one-node replica set is initiated; until it has elected its primary
    # (writes fail before), the check exits 1.
    assert "rs.initiate(" in script and "mongo:27017" in script
    assert re.search(r"if \(!db\.hello\(\)\.isWritablePrimary\) \{ quit\(1\) \}$", script), script


def test_each_image_is_built_by_one_service_and_mailpit_is_for_development() -> None:
    services = compose()["services"]
    ours = {name: d for name, d in services.items() if d.get("image", "").startswith("c2future-match/")}
    builders: dict[str, list[str]] = {}
    for name, definition in ours.items():
        if "build" in definition:
            builders.setdefault(definition["image"], []).append(name)
            assert definition["build"]["dockerfile"] == "deploy/Dockerfile"
            assert f"c2future-match/{definition['build']['args']['SERVICE']}:" in definition["image"]
    # Compose builds each service with `build:` (in parallel): two of them for one tag race.
    assert {image: len(names) for image, names in builders.items()} == {
        image: 1 for image in {d["image"] for d in ours.values()}
    }
    assert len([d for d in ours.values() if service_of(d) == "registration"]) >= 3
    assert builders["c2future-match/registration:${C2F_VERSION:-0.1.0}"] == ["topics"]
    profiles = {name: d["profiles"] for name, d in services.items() if "profiles" in d}
    assert profiles == {"mailpit": ["dev"], "jaeger": ["tracing"], "kafka-exporter": ["monitoring"]}
    assert dotenv(ROOT / ".env.example")["COMPOSE_PROFILES"] == "dev"  # the quick start has it


def test_every_service_waits_for_healthy_servers_and_the_topics() -> None:
    services = compose()["services"]
    ours = {name: d for name, d in services.items() if service_of(d)}
    assert {service_of(d) for d in ours.values()} == set(SETTINGS)
    for name, definition in ours.items():
        assert definition["depends_on"] == {
            "kafka": {"condition": "service_healthy"},
            "mongo": {"condition": "service_healthy"},
            "topics": {"condition": "service_completed_successfully"},
        }, name
        assert definition["environment"]["C2F_KAFKA_TIMEOUTS"] == "standard"  # Kafka's own timeouts
        assert "container_name" not in definition  # it would forbid --scale
        # SIGTERM: requests drain, then tasks, consumers and connections close, each bounded.
        grace = int(definition["stop_grace_period"].rstrip("s"))
        assert grace > shutdown_budget_s(), name
    job = services["topics"]
    assert job["restart"] == "no" and job["command"][0] == "c2f-create-topics"


def test_registration_runs_once_per_cluster_each_with_its_own_database() -> None:
    services = compose()["services"]
    instances = {
        name: d["environment"]["C2F_REGISTRATION_CLUSTERS"]
        for name, d in services.items()
        if service_of(d) == "registration"
    }
    per_cluster = {n: c for n, c in instances.items() if "$" not in c}
    assert len(per_cluster) >= 2, instances
    databases = {RegistrationSettings(clusters=c).mongo_db for c in per_cluster.values()}
    groups = {RegistrationSettings(clusters=c).consumer_group for c in per_cluster.values()}
    assert len(databases) == len(groups) == len(per_cluster), (databases, groups)
    ports = [d["ports"][0].split(":")[0] for n, d in services.items() if n in instances]
    assert len(set(ports)) == len(ports)


def test_scaled_services_have_a_port_range_within_the_partitions() -> None:
    services = compose()["services"]
    env_example = dotenv(ROOT / ".env.example")
    partitions = int(env_example["C2F_KAFKA_PARTITIONS"])
    assert f"--partitions=${{C2F_KAFKA_PARTITIONS:-{partitions}}}" in services["topics"]["command"]
    for name in SCALED:
        [mapping] = services[name]["ports"]
        first, last = (int(p) for p in mapping.split(":")[0].split("-"))
        # `--scale NAME=N` needs N host ports; more instances than partitions would sit idle.
        assert 2 <= last - first + 1 <= partitions, (name, mapping)


def dotenv(path: Path) -> dict[str, str]:
    pairs = (
        line.split("=", 1) for line in path.read_text().splitlines() if line and not line.startswith("#")
    )
    return {key: value for key, value in pairs}


def test_every_variable_is_documented_and_every_setting_exists() -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"\$\{(\w+)", text))
    documented = set(dotenv(ROOT / ".env.example"))
    assert used <= documented, f"not in .env.example: {sorted(used - documented)}"
    example = dotenv(ROOT / ".env.example")
    secrets = ("C2F_OPERATOR_TOKEN", "C2F_LINK_SECRET", "C2F_SMTP_PASSWORD")
    assert not [name for name in secrets if example[name]], (
        "secrets come from the operator, not the repository"
    )
    assert "${C2F_OPERATOR_TOKEN:?" in text and "${C2F_LINK_SECRET:?" in text  # refused if unset
    known = set().union(*(env_names(s) for s in SETTINGS.values()))
    for name, definition in compose()["services"].items():
        service = service_of(definition)
        if service is None:
            continue
        for variable in definition["environment"]:
            assert variable in env_names(SETTINGS[service]) | TRACING, (
                f"{name}: {variable} is no {service} setting"
            )
    assert "C2F_LINK_SECRET" in known and "C2F_SMTP_HOST" in known


def test_every_service_can_send_traces_to_jaeger_and_is_off_by_default() -> None:
    services = compose()["services"]
    jaeger = services["jaeger"]
    assert re.fullmatch(r"jaegertracing/jaeger:\d+\.\d+\.\d+", jaeger["image"])  # v2: all-in-one
    assert jaeger["ports"] == ["${C2F_JAEGER_UI_PORT:-16686}:16686"]
    ours = [d for d in services.values() if service_of(d)]
    assert len(ours) >= 6
    for definition in ours:
        environment = definition["environment"]
        assert environment["C2F_TRACES"] == "${C2F_TRACES:-off}"
        assert environment["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"  # OTLP over HTTP
    assert dotenv(ROOT / ".env.example")["C2F_TRACES"] == "off"
    [config] = [d for path, d in manifests() if d["kind"] == "ConfigMap" and BASE in path.parents]
    assert config["data"]["C2F_TRACES"] == "off"
    assert config["data"]["OTEL_EXPORTER_OTLP_ENDPOINT"].endswith(":4318")
    known = set().union(*(env_names(s) for s in SETTINGS.values()))
    assert set(config["data"]) <= known | TRACING, set(config["data"]) - known - TRACING


def test_every_service_that_checks_links_gets_the_former_secrets_too() -> None:
    services = compose()["services"]
    for name, definition in services.items():
        service = service_of(definition)
        if service is None:
            continue
        reads_links = "C2F_LINK_SECRETS_OLD" in env_names(SETTINGS[service])
        assert ("C2F_LINK_SECRET" in definition["environment"]) == reads_links, name
        if reads_links:  # optional: empty unless a secret was rotated
            assert definition["environment"]["C2F_LINK_SECRETS_OLD"] == "${C2F_LINK_SECRETS_OLD:-}", name
    assert dotenv(ROOT / ".env.example")["C2F_LINK_SECRETS_OLD"] == ""


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run(
        [str(hadolint), "--no-color", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_is_multi_stage_unprivileged_and_checks_readiness() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    assert sum(line.startswith("FROM ") for line in lines) >= 2
    [user] = [line for line in lines if line.startswith("USER ")]
    assert user.split()[1].isdigit() and user.split()[1] != "0"
    healthcheck = next(i for i, line in enumerate(lines) if line.startswith("HEALTHCHECK"))
    assert "/readyz" in lines[healthcheck + 1]
    assert any(line.startswith("COPY --from=build") for line in lines)
    assert "--require-hashes --no-deps -r requirements/lock.txt" in DOCKERFILE.read_text()  # test_lock.py


def test_the_images_install_only_pinned_versions() -> None:
    pinned = {
        line.split("==")[0].lower().replace("_", "-")
        for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for project in [ROOT / "shared", *(ROOT / "services").iterdir()]:
        data = (project / "pyproject.toml").read_text()
        block = data.split("dependencies = [", 1)[1].split("]", 1)[0]
        for requirement in re.findall(r'"([A-Za-z0-9_.-]+)', block):
            name = requirement.lower().replace("_", "-")
            assert name.startswith("c2f-") or name in pinned, f"{project.name}: {requirement} is not pinned"


def manifests() -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for path in sorted(KUBERNETES.rglob("*.yaml")):
        if path.name in ("kustomization.yaml", "alerts.yaml") or OVERLAYS in path.parents:
            continue
        found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


KEDA = "keda.sh/v1alpha1"  # a custom resource: no Kubernetes schema; checked by the tests below


def test_kubernetes_manifests_follow_the_kubernetes_schemas() -> None:
    assert len(manifests()) >= 20
    for path, doc in manifests():
        assert doc["metadata"]["name"], path
        if doc["apiVersion"] != KEDA:
            kubernetes_validate.validate(doc, "1.37.0", strict=True)
    # A mistake is caught: a misspelt field in a container.
    deployment = next(d for _, d in manifests() if d["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, "1.37.0", strict=True)


def test_kustomization_lists_every_manifest_and_names_the_registry() -> None:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    files = {p.name for p in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files
    images = {i["name"]: i for i in kustomization["images"]}
    assert set(images) == {f"c2future-match/{s}" for s in SETTINGS}
    for name, image in images.items():
        assert image["newName"] == REGISTRY + name.split("/")[1]
        assert re.fullmatch(r"\d+\.\d+\.\d+", image["newTag"])


def overlay(environment: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((OVERLAYS / environment / "kustomization.yaml").read_text())
    return loaded


def test_each_environment_has_an_overlay_on_the_base() -> None:
    environments = {p.name for p in OVERLAYS.iterdir() if p.is_dir()}
    assert environments == {"staging", "production"}
    namespaces = set()
    for environment in environments:
        kustomization = overlay(environment)
        assert kustomization["resources"] == ["../../base"]
        namespaces.add(kustomization["namespace"])
        # Its images: the registry's, each at a version.
        images = {i["name"]: i["newTag"] for i in kustomization["images"]}
        assert images.keys() == {REGISTRY + s for s in SETTINGS}, environment
        assert all(re.fullmatch(r"\d+\.\d+\.\d+(-\w+)?", tag) for tag in images.values())
        # Its servers and addresses: only settings the services read.
        [config] = [p["path"] for p in kustomization["patches"] if "path" in p]
        patch = yaml.safe_load((OVERLAYS / environment / config).read_text())
        assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "c2f-config"
        known = set().union(*(env_names(s) for s in SETTINGS.values()))
        assert set(patch["data"]) <= known | TRACING, set(patch["data"]) - known
        assert {"C2F_KAFKA_BOOTSTRAP", "C2F_MONGO_URI", "C2F_PUBLIC_MATCHING_URL"} <= set(patch["data"])
    assert len(namespaces) == len(environments)  # environments never share a namespace
    assert (OVERLAYS / "README.md").is_file()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="renders the overlays with kubectl kustomize")
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_each_overlay_renders_to_valid_manifests(environment: str) -> None:
    kubectl = shutil.which("kubectl")
    assert kubectl is not None
    rendered = subprocess.run(
        [kubectl, "kustomize", str(OVERLAYS / environment)], capture_output=True, text=True, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
    base = [d for path, d in manifests() if BASE in path.parents]
    assert sorted((d["kind"], d["metadata"]["name"]) for d in docs) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in base
    )
    for doc in docs:
        if doc["apiVersion"] != KEDA:
            kubernetes_validate.validate(doc, "1.37.0", strict=True)
        assert doc["metadata"]["namespace"] == overlay(environment)["namespace"]
    images = {
        container["image"]
        for doc in docs
        if doc["kind"] in ("Deployment", "Job")
        for container in doc["spec"]["template"]["spec"]["containers"]
    }
    tags = {i["name"]: i["newTag"] for i in overlay(environment)["images"]}
    assert images == {f"{name}:{tag}" for name, tag in tags.items()}
    # One registry and one release for the whole environment; unset, the placeholder's name says so.
    assert {image.rsplit("/", 2)[0] for image in images} == {REGISTRY.split("/")[0]}
    assert len({image.rsplit(":", 1)[1] for image in images}) == 1
    [config] = [d for d in docs if d["kind"] == "ConfigMap"]
    patch = yaml.safe_load((OVERLAYS / environment / "config.yaml").read_text())
    assert patch["data"].items() <= config["data"].items()


def rendered_images(docs: list[dict[str, Any]]) -> dict[str, str]:
    """The image of each workload's container, by the component it runs."""
    images = {}
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            [container] = doc["spec"]["template"]["spec"]["containers"]
            images[doc["metadata"]["name"]] = container["image"]
    return images


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="renders the overlays with kubectl kustomize")
@pytest.mark.parametrize("environment", ["staging", "production"])
def test_make_manifests_puts_your_registry_and_tag_on_every_image(environment: str) -> None:
    result = make("-s", "manifests", f"OVERLAY={environment}", "REGISTRY=ghcr.io/acme", "TAG=9.9.9")
    assert result.returncode == 0, result.stderr
    assert "set-your-registry" not in result.stdout
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    images = rendered_images(docs)
    assert len(images) >= 6
    for workload, image in images.items():
        found = re.fullmatch(r"ghcr\.io/acme/c2future-match/(\w+):9\.9\.9", image)
        assert found, (workload, image)
        # One name per service: the workload runs its own service's image.
        assert workload == "c2f-create-topics" or workload.split("-")[0] == found.group(1), (workload, image)
    assert {d["metadata"]["namespace"] for d in docs} == {overlay(environment)["namespace"]}
    assert not (KUBERNETES / ".render").exists()  # it cleans up after itself


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="renders the overlays with kubectl kustomize")
def test_make_manifests_refuses_to_render_without_a_registry_or_with_an_unknown_overlay() -> None:
    result = make("-s", "manifests", "OVERLAY=production")
    assert result.returncode != 0 and "needs REGISTRY=" in result.stderr
    assert result.stdout == ""
    result = make("-s", "manifests", "OVERLAY=prod", "REGISTRY=ghcr.io/acme")
    assert result.returncode != 0 and "staging" in result.stderr and "production" in result.stderr


def test_every_deployment_has_probes_resources_and_runs_unprivileged() -> None:
    deployments = [d for path, d in manifests() if d["kind"] == "Deployment" and BASE in path.parents]
    assert {
        d["spec"]["template"]["spec"]["containers"][0]["image"].split("/")[1] for d in deployments
    } == set(SETTINGS)
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        [container] = pod["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert pod["securityContext"]["runAsNonRoot"] is True
        # preStop keeps the pod serving while it leaves its Service's endpoints; SIGTERM follows,
        # and the grace period counts both.
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep" and 0 < int(pre_stop[1]) <= 10
        assert pod["terminationGracePeriodSeconds"] > int(pre_stop[1]) + shutdown_budget_s()
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_autoscalers_follow_their_consumer_groups_lag_at_the_broker_up_to_the_partitions() -> None:
    [job] = [d for _, d in manifests() if d["kind"] == "Job"]
    command = job["spec"]["template"]["spec"]["containers"][0]["command"]
    partitions = int(next(a for a in command if a.startswith("--partitions=")).split("=")[1])
    assert not [d for _, d in manifests() if d["kind"] == "HorizontalPodAutoscaler"]  # KEDA makes them
    scaled = {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == "ScaledObject"}
    assert set(scaled) == set(SCALED)
    deployments = {d["metadata"]["name"]: d for _, d in manifests() if d["kind"] == "Deployment"}
    [config] = [d for path, d in manifests() if d["kind"] == "ConfigMap" and BASE in path.parents]
    consumer = inspect.getsource(importlib.import_module("c2f_shared.service.consumer"))
    for name, scaler in scaled.items():
        assert scaler["apiVersion"] == KEDA
        spec = scaler["spec"]
        assert set(spec) <= {
            "scaleTargetRef",
            "minReplicaCount",
            "maxReplicaCount",
            "pollingInterval",
            "advanced",
            "triggers",
        }
        assert spec["scaleTargetRef"] == {"name": name} and name in deployments
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"] <= partitions
        [kafka] = [t for t in spec["triggers"] if t["type"] == "kafka"]
        metadata = kafka["metadata"]
        # The group's lag read from the brokers: it counts whether or not any consumer is alive.
        assert metadata["consumerGroup"] == SETTINGS[name]().consumer_group  # type: ignore[attr-defined]
        assert "topic" not in metadata  # every topic the group reads
        assert metadata["bootstrapServersFromEnv"] in config["data"]
        assert envs_from(deployments[name]) == {"c2f-config", "c2f-secrets"}  # where KEDA reads it
        assert int(metadata["lagThreshold"]) > 0
        assert metadata["allowIdleConsumers"] == "false"  # no more replicas than partitions
        # A partition without a committed offset: lag counted as the consumers would read it.
        assert f'auto_offset_reset="{metadata["offsetResetPolicy"]}"' in consumer
        assert all(isinstance(v, str) for v in metadata.values())  # KEDA's metadata is strings
        [cpu] = [t for t in spec["triggers"] if t["type"] == "cpu"]
        assert cpu["metricType"] == "Utilization" and 0 < int(cpu["metadata"]["value"]) <= 100
        behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
        assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 300  # no flapping
    assert partitions >= topics.PARTITIONS


def envs_from(deployment: dict[str, Any]) -> set[str]:
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    return {next(iter(e.values()))["name"] for e in container["envFrom"]}


def kafka_exporter_image() -> str:
    [deployment] = [
        d for _, d in manifests() if d["kind"] == "Deployment" and d["metadata"]["name"] == "kafka-exporter"
    ]
    image: str = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    return image


def test_kafka_exporter_reads_lag_from_the_broker_in_compose_and_kubernetes() -> None:
    image = kafka_exporter_image()
    assert re.fullmatch(r"danielqsj/kafka-exporter:v\d+\.\d+\.\d+", image)
    exporter = compose()["services"]["kafka-exporter"]
    assert exporter["image"] == image  # one version everywhere
    assert exporter["command"] == ["--kafka.server=kafka:9092"]
    assert exporter["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    [deployment] = [
        d for _, d in manifests() if d["metadata"]["name"] == "kafka-exporter" and d["kind"] == "Deployment"
    ]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args and all(re.fullmatch(r"--kafka\.server=[\w.-]+:9092", a) for a in args)
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9308"


def alert_rules() -> dict[str, dict[str, Any]]:
    rules = yaml.safe_load((KUBERNETES / "monitoring" / "alerts.yaml").read_text())
    return {rule["alert"]: rule for rule in rules["groups"][0]["rules"]}


def test_lag_alerts_read_the_brokers_lag_per_consumer_group_and_topic() -> None:
    rules = alert_rules()
    lag = " ".join(rules["C2FConsumerLagGrowing"]["expr"].split())
    assert "c2f_consumer_lag" not in lag  # silent when the group's consumers are dead
    sums = re.findall(r"sum by \(([^)]*)\) \((?:deriv\()?(\w+)\{", lag)
    assert sums == [("consumergroup, topic", "kafka_consumergroup_lag")] * 2, lag
    down = " ".join(rules["C2FConsumerGroupDown"]["expr"].split())
    assert "kafka_consumergroup_lag" in down and "kafka_consumergroup_members" in down and "== 0" in down


def test_dead_letter_alert_takes_the_increase_of_a_counter() -> None:
    expression = alert_rules()["C2FDeadLetters"]["expr"]
    counters = {m.name for m in Metrics().registry.collect() if m.type == "counter"}
    gauges = {m.name for m in Metrics().registry.collect() if m.type == "gauge"}
    assert "c2f_dead_letters" in gauges
    for metric in re.findall(r"increase\((\w+)", expression):
        assert metric.removesuffix("_total") in counters, metric


def test_alerts_name_only_metrics_the_services_export() -> None:
    exported = {m.name for m in Metrics().registry.collect()}
    exported |= {f"{name}_total" for name in exported} | {f"{name}_bucket" for name in exported}
    for rule in alert_rules().values():
        for metric in re.findall(r"\bc2f_\w+", rule["expr"]):
            assert metric in exported, (rule["alert"], metric)
