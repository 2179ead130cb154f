"""Kafka: where the broker is, how to talk to it, and what the topics are called.

One module for every side that talks to Kafka: the publisher SDK, the worker, `lake wait` and the
embedded broker. Read from the environment once at each entry point.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["DEFAULT_ROLLOUT_TOPIC", "KafkaSettings", "dead_letter_topic_for", "rollout_topics"]

DEFAULT_ROLLOUT_TOPIC = "rollout-events"


def dead_letter_topic_for(topic: str) -> str:
    """The dead-letter topic of a rollout topic, unless DEAD_LETTER_TOPIC names another."""
    return f"{topic}.dead-letters"



def rollout_topics(topic: str, partitions: int, *, dead_letter_topic: str | None = None) -> dict[str, int]:
    """Topic -> partitions for a rollout topic and its dead-letter topic (one partition: it is small)."""
    return {topic: partitions, dead_letter_topic or dead_letter_topic_for(topic): 1}

class KafkaSettings(BaseSettings):
    """Where the broker is and how to talk to it (production brokers need the security fields)."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    rollout_topic: str = DEFAULT_ROLLOUT_TOPIC
    dead_letter_topic: str | None = Field(default=None, description="default: <rollout_topic>.dead-letters")
    topic_partitions: int = Field(default=4, ge=1)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None

    @property
    def dlq_topic(self) -> str:
        return self.dead_letter_topic or dead_letter_topic_for(self.rollout_topic)

    def aiokafka_kwargs(self) -> dict[str, object]:
        """Security keyword arguments for aiokafka clients; empty for a plaintext broker."""
        kwargs: dict[str, object] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_security_protocol.endswith("SSL"):
            from aiokafka.helpers import create_ssl_context

            kwargs["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile)
        if self.kafka_sasl_mechanism:
            kwargs["sasl_mechanism"] = self.kafka_sasl_mechanism
            kwargs["sasl_plain_username"] = self.kafka_sasl_username
            kwargs["sasl_plain_password"] = (
                self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
            )
        return kwargs
