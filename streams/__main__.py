"""`python -m streams broker|replay ...`: the embedded broker and importers."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

__all__ = ["main"]


def _broker(args: argparse.Namespace) -> int:
    from streams.broker import EmbeddedBroker
    from streams.settings import KafkaSettings

    settings = KafkaSettings()
    topic = args.topic or settings.rollout_topic
    dlq = settings.dead_letter_topic or f"{topic}.dead-letters"
    broker = EmbeddedBroker(host=args.host, port=args.port, topics={topic: args.partitions, dlq: 1})
    stop = {"signal": None}

    def _on_signal(signum: int, _frame: object) -> None:
        stop["signal"] = signum
        broker.stop()

    broker.start()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(
        f"broker listening on {broker.bootstrap_servers} (pid {broker.pid}); topics: "
        f"{topic} ({args.partitions} partitions), {dlq} (1). Ctrl-C stops it.",
        flush=True,
    )
    try:
        broker.wait()
    except (AttributeError, AssertionError):
        pass  # stopped by a signal handler while waiting
    print("broker stopped", flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (Tansu)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--partitions", type=int, default=4, help="partitions of the rollout topic")
    p.add_argument("--topic", default=None, help="rollout topic (default: $ROLLOUT_TOPIC or rollout-events)")
    p.set_defaults(func=_broker)

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except Exception as exc:
        from schemas.exceptions import RolloutLakeError

        if args.debug or not isinstance(exc, RolloutLakeError):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
