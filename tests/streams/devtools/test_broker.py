"""`python -m streams broker`: starts, creates the topics, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from streams.devtools.broker import BrokerError, EmbeddedBroker, free_port


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_broker_command_serves_topics_and_stops_on_signal(signum):
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "broker", "--port", str(port), "--partitions", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        line = proc.stdout.readline()
        while line and "topics:" not in line:
            line = proc.stdout.readline()
        assert f"127.0.0.1:{port}" in line and "rollout-events (3 partitions)" in line

        async def topics() -> set[str]:
            admin = AIOKafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
            await admin.start()
            try:
                return set(await admin.list_topics())
            finally:
                await admin.close()

        assert {"rollout-events", "rollout-events.dead-letters"} <= asyncio.run(topics())
        proc.send_signal(signum)
        assert proc.wait(timeout=15) == 0
        assert "broker stopped" in proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_busy_port_is_a_clear_error(broker):
    with pytest.raises(BrokerError, match=f"port {broker.port} on 127.0.0.1 is already in use"):
        EmbeddedBroker(port=broker.port).start()
