"""Shared fixtures: the real embedded broker (one per test session) and temp lakes."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from schemas.kafka import dead_letter_topic_for
from streams.devtools.broker import EmbeddedBroker, create_topics, free_port

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


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
        create_topics(broker.bootstrap_servers, {name: partitions, dead_letter_topic_for(name): 1})
        return name

    return make


@pytest.fixture
def lake_uri_factory(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], str]:
    """A fresh, empty lake directory per call."""

    def make() -> str:
        return str(tmp_path_factory.mktemp("lake"))

    return make


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory):
    """One real S3-API server (moto's server mode, its own process) for the whole test session."""
    from tests.s3server import S3Server

    with S3Server(tmp_path_factory.mktemp("s3") / "moto.log") as server:
        yield server


@pytest.fixture
def s3_lake_factory(s3_server, monkeypatch: pytest.MonkeyPatch) -> Callable[[], str]:
    """A fresh s3://bucket/lake per call, with this process's AWS_* variables pointing at the server."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)

    def make() -> str:
        return f"s3://{s3_server.bucket()}/lake"

    return make
