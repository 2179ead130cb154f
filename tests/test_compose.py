"""docker-compose.yml and Dockerfile cannot run here (no Docker engine); check their wiring instead."""

from __future__ import annotations

import base64
import json
import os
import re
import tomllib
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from schemas.kafka import dead_letter_topic_for  # noqa: E402
from streams.worker.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[1]


def interpolate(value, env: dict[str, str] | None = None):
    """Compose's ${VAR:-default} / ${VAR} / $$ substitution, applied recursively."""
    env = env or {}
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, default = m.group(1), m.group(3)
        return env.get(name) or (default if default is not None else "")

    value = re.sub(r"(?<!\$)\$\{([A-Z_][A-Z0-9_]*)(:-([^}]*))?\}", sub, value)
    return value.replace("$$", "$")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return interpolate(compose["services"])


def env_of(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    assert isinstance(env, dict), "use the mapping form of `environment`"
    return {k: str(v) for k, v in env.items()}


def test_services_present(services):
    assert {"kafka", "topics", "worker", "minio", "minio-init", "snapshot", "trainer"} <= set(services)
    assert "zookeeper" not in services


def test_kafka_is_single_node_kraft_with_internal_and_host_listeners(services):
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = env_of(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert len(base64.urlsafe_b64decode(env["CLUSTER_ID"] + "==")) == 16
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{node}@kafka:9093"
    listeners = dict(re.match(r"(\w+)://(.*)", part).groups() for part in env["KAFKA_LISTENERS"].split(","))
    advertised = dict(re.match(r"(\w+)://(.*)", part).groups() for part in env["KAFKA_ADVERTISED_LISTENERS"].split(","))
    protocols = dict(part.split(":") for part in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(listeners) == set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] not in advertised
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in advertised
    # Containers reach kafka:9092; the host reaches localhost:9092 through the published port.
    assert advertised["INTERNAL"] == "kafka:9092" and listeners["INTERNAL"] == ":9092"
    host_port, container_port = kafka["ports"][0].split(":")
    assert listeners["EXTERNAL"] == f":{container_port}"
    assert advertised["EXTERNAL"] == f"localhost:{host_port}" == "localhost:9092"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"):
        assert env[key] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert any(v.endswith(":" + env["KAFKA_LOG_DIRS"]) for v in kafka["volumes"])
    assert "kafka:9092" in " ".join(kafka["healthcheck"]["test"])


def test_topics_job_creates_the_rollout_and_dead_letter_topics(services):
    topics = services["topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert topics["restart"] == "no"
    env = env_of(topics)
    script = " ".join(topics["command"])
    # After compose substitution `$$VAR` is the container shell's `$VAR`; expand it like sh would.
    expanded = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], script)
    assert env["ROLLOUT_TOPIC"] == "rollout-events" and int(env["ROLLOUT_PARTITIONS"]) >= 4
    creates = re.findall(r'--create --if-not-exists --topic "([^"]+)" --partitions "?(\d+)"?', expanded)
    assert creates == [("rollout-events", env["ROLLOUT_PARTITIONS"]), (dead_letter_topic_for("rollout-events"), "1")]
    assert "--bootstrap-server kafka:9092" in expanded and "set -e" in expanded


def _storage_names() -> set[str]:
    """Every environment name the lake's object-store settings read (lake/storage.py)."""
    from lake.settings import StorageSettings

    return {choice.upper() for f in StorageSettings.model_fields.values() for choice in f.validation_alias.choices}


def test_two_workers_are_built_from_the_project_and_wired_to_kafka_and_the_s3_lake(services, monkeypatch):
    from lake.storage import storage_options

    worker = services["worker"]
    assert worker["build"] == "."
    assert worker["command"] == ["faust", "-A", "streams.worker.app", "worker", "-l", "info"]
    assert worker["deploy"]["replicas"] == 2  # one consumer group over the 8 partitions
    env = env_of(worker)
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert env["LAKE_URI"] == "s3://rollout-lake/lake"
    assert env["ROLLOUT_TOPIC"] == env_of(services["topics"])["ROLLOUT_TOPIC"]
    assert env["TOPIC_PARTITIONS"] == env_of(services["topics"])["ROLLOUT_PARTITIONS"] == "8"
    # Every variable is one the code reads (a typo would be ignored silently): the worker's
    # settings, or the lake's object-store settings.
    fields = {name.upper() for name in WorkerSettings.model_fields}
    assert set(env) - fields <= _storage_names(), set(env) - fields - _storage_names()
    for key in [k for k in list(os.environ) if k.startswith(("AWS_", "LAKE_"))]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = WorkerSettings()
    assert (settings.kafka_bootstrap_servers, settings.rollout_topic, settings.lake_uri, settings.topic_partitions) == (
        "kafka:9092", "rollout-events", "s3://rollout-lake/lake", 8)
    opts = storage_options(settings.lake_uri)
    assert opts["aws_endpoint_url"] == "http://minio:9000" and opts["aws_allow_http"] == "true"
    assert opts["aws_conditional_put"] == "etag" and opts["aws_virtual_hosted_style_request"] == "false"
    assert (opts["aws_access_key_id"], opts["aws_secret_access_key"]) == (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    assert "./lake:/lake" in worker["volumes"]
    deps = worker["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["topics"]["condition"] == "service_completed_successfully"
    assert deps["minio-init"] == {"condition": "service_completed_successfully"}


def test_minio_runs_by_default_with_the_workers_credentials_and_bucket(compose, services):
    assert "profiles" not in services["minio"] and "profiles" not in services["minio-init"]
    env = env_of(services["worker"])
    assert env["AWS_ENDPOINT_URL"] == "http://minio:9000" and env["AWS_ALLOW_HTTP"] == "true"
    assert env["AWS_REGION"] and env["AWS_CONDITIONAL_PUT"] == "etag"
    minio = env_of(services["minio"])
    assert (minio["MINIO_ROOT_USER"], minio["MINIO_ROOT_PASSWORD"]) == (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    init = services["minio-init"]
    assert init["depends_on"]["minio"]["condition"] == "service_healthy"
    assert env_of(init)["LAKE_BUCKET"] == "rollout-lake" == env["LAKE_URI"].split("/")[2]
    assert 'mc mb --ignore-existing "lake/$LAKE_BUCKET"' in " ".join(init["command"])
    # Overrides flow through: real credentials replace the MinIO defaults everywhere, and a
    # local-disk lake is one variable away.
    custom = interpolate(compose["services"], {"AWS_ACCESS_KEY_ID": "AKIA1", "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
    assert env_of(custom["worker"])["AWS_ACCESS_KEY_ID"] == env_of(custom["minio"])["MINIO_ROOT_USER"] == "AKIA1"
    local = interpolate(compose["services"], {"LAKE_URI": "/lake"})
    assert env_of(local["worker"])["LAKE_URI"] == env_of(local["snapshot"])["LAKE_URI"] == "/lake"


def test_train_profile_cuts_its_snapshot_from_the_s3_lake_first(services):
    from lake.cli import build_parser

    snap, trainer = services["snapshot"], services["trainer"]
    assert snap["profiles"] == ["train"] and snap["restart"] == "no"
    assert trainer["depends_on"]["snapshot"]["condition"] == "service_completed_successfully"
    env = env_of(snap)
    assert env["LAKE_URI"] == env_of(services["worker"])["LAKE_URI"] == "s3://rollout-lake/lake"
    assert set(env) - {"SNAPSHOT_NAME", "SNAPSHOT_ARGS", "LAKE_URI"} <= _storage_names()
    script = " ".join(snap["command"])
    expanded = re.sub(r"\$(\w+)", lambda m: env[m.group(1)], script)
    argv = expanded.replace('"', "").split()
    assert argv[:3] == ["python", "-m", "lake"]
    args = build_parser().parse_args(argv[3:])  # a command the lake CLI accepts
    assert args.command == "snapshot" and args.out == "/snapshots/latest" and args.force
    # The trainer reads exactly the folder the snapshot job wrote.
    assert trainer["command"][:2] == ["--snapshot", args.out]
    assert "./snapshots:/snapshots" in snap["volumes"]


def test_trainer_is_a_gpu_job_in_the_train_profile(services):
    trainer = services["trainer"]
    assert trainer["profiles"] == ["train"] and trainer["restart"] == "no"
    assert trainer["build"]["context"] == "." and trainer["build"]["args"]["EXTRAS"] == "train"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "train" in extras
    assert trainer["entrypoint"] == ["python", "-m", "trainer"]
    assert trainer["command"][:2] == ["--snapshot", "/snapshots/latest"]
    assert "./snapshots:/snapshots:ro" in trainer["volumes"]
    (device,) = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"] and device["count"] == 1


def test_dependencies_exist_and_respect_profiles(services):
    for name, service in services.items():
        deps = service.get("depends_on") or {}
        assert isinstance(deps, dict), f"{name}: use the long depends_on form with conditions"
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            assert spec["condition"] in {"service_started", "service_healthy", "service_completed_successfully"}
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no healthcheck for {name} to wait on"
            # A default service must not need a profiled one, or plain `docker compose up` fails.
            if not service.get("profiles") and services[dep].get("profiles"):
                assert spec.get("required") is False, f"{name} requires {dep}, which only runs in a profile"


def test_dockerfile_builds_the_worker_image():
    text = (REPO / "Dockerfile").read_text()
    logical = re.sub(r"\\\n\s*", " ", text)  # join `\` continuation lines
    instructions = [line.split(None, 1) for line in logical.splitlines() if line.strip() and not line.startswith("#")]
    assert instructions[0] == ["FROM", "python:3.11-slim"]
    run = " ".join(arg for op, arg in instructions if op == "RUN")
    assert re.search(r"pip install .*\"\.\$\{EXTRAS:\+\[\$EXTRAS\]\}\"", run)
    # The default image runs the worker and, for the snapshot job, `python -m lake`: the worker extra has both.
    assert ["ARG", 'EXTRAS="worker"'] in instructions
    cmd = next(arg for op, arg in instructions if op == "CMD")
    assert json.loads(cmd) == ["faust", "-A", "streams.worker.app", "worker", "-l", "info"]
    assert "KAFKA_BOOTSTRAP_SERVERS=kafka:9092" in text and "LAKE_URI=/lake" in text
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".git", ".venv", "lake"} <= ignored
    needed = {"pyproject.toml", "constraints.txt", "schemas", "streams", "lake/", "trainer"}
    assert not needed & ignored
