"""`python -m streams broker|replay ...`: the embedded broker and importers."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

__all__ = ["main"]


def _broker(args: argparse.Namespace) -> int:
    from schemas.kafka import KafkaSettings, dead_letter_topic_for, rollout_topics
    from streams.devtools.broker import EmbeddedBroker

    settings = KafkaSettings()
    topic = args.topic or settings.rollout_topic
    dlq = settings.dead_letter_topic or dead_letter_topic_for(topic)
    broker = EmbeddedBroker(host=args.host, port=args.port, topics=rollout_topics(topic, args.partitions, dead_letter_topic=dlq))

    def _on_signal(signum: int, _frame: object) -> None:
        # Only forward the signal: waiting here would re-enter Popen.wait from the handler.
        broker.terminate()

    broker.start()
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    print(
        f"broker listening on {broker.bootstrap_servers} (pid {broker.pid}); topics: "
        f"{topic} ({args.partitions} partitions), {dlq} (1). Ctrl-C stops it.",
        flush=True,
    )
    broker.wait()
    broker.stop()
    print("broker stopped", flush=True)
    return 0


def _replay(args: argparse.Namespace) -> int:
    import asyncio

    from streams.importers import count_synth_sessions, read_sft_jsonl, read_synth_sqlite, replay
    from streams.importers.replay import progress_bar
    from streams.publisher.publisher import RolloutPublisher

    if args.source == "sqlite":
        total, sessions, origin = count_synth_sessions(args.path), read_synth_sqlite(args.path), args.path
    else:
        total, sessions = None, read_sft_jsonl(args.files, namespace_by_file=args.namespace_by_file)
        origin = args.files[0] if len(args.files) == 1 else f"{len(args.files)} files"
    if not args.debug:
        # Tansu's refusal of idempotent producers is logged by aiokafka as an ERROR; ours explains it.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    overrides = {k: v for k, v in {"bootstrap_servers": args.bootstrap_servers, "topic": args.topic}.items() if v}
    publisher = None if args.dry_run else RolloutPublisher.from_env(**overrides)

    async def run():
        with progress_bar(total, disable=args.no_progress) as bar:
            if publisher is None:
                return await replay(sessions, None, progress=bar)
            async with publisher:
                return await replay(sessions, publisher, progress=bar)

    report = asyncio.run(run())
    for session_id, reason in report.skipped:
        print(f"skipped session {session_id}: {reason}", file=sys.stderr)
    target = "validated (dry run)" if publisher is None else f"to {publisher.topic} at {publisher.bootstrap_servers}"
    line = f"replayed {report.sessions} sessions ({report.events} events) from {origin} {target}"
    if report.skipped:
        line += f"; skipped {len(report.skipped)} invalid sessions (listed above)"
    print(line, flush=True)
    return 1 if report.skipped else 0


def main(argv: list[str] | None = None) -> int:
    from schemas.cli import run_cli

    return run_cli(_main, argv)


def _main(argv: list[str]) -> int:
    from schemas.cli import EXIT_STATUS

    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__, epilog=EXIT_STATUS)
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("broker", help="run the embedded Kafka-compatible broker (Tansu)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9092)
    p.add_argument("--partitions", type=int, default=4, help="partitions of the rollout topic")
    p.add_argument("--topic", default=None, help="rollout topic (default: $ROLLOUT_TOPIC or rollout-events)")
    p.set_defaults(func=_broker)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bootstrap-servers", default=None, help="default: $KAFKA_BOOTSTRAP_SERVERS or 127.0.0.1:9092")
    common.add_argument("--topic", default=None, help="default: $ROLLOUT_TOPIC or rollout-events")
    common.add_argument("--dry-run", action="store_true", help="read and validate only; send nothing")
    common.add_argument("--no-progress", action="store_true", help="no progress bar")
    p = sub.add_parser("replay", help="import existing traces as v1 events through Kafka (re-imports add nothing)")
    sources = p.add_subparsers(dest="source", required=True)
    s = sources.add_parser("sqlite", parents=[common], help="a synth-ai tracing_v3 SQLite database")
    s.add_argument("path", help="the .db file")
    s.set_defaults(func=_replay)
    j = sources.add_parser("jsonl", parents=[common], help='SFT JSONL files: {"messages": [...], "metadata": {...}} per line')
    j.add_argument("files", nargs="+", help="one or more .jsonl files")
    j.add_argument("--namespace-by-file", action="store_true",
                   help="prefix metadata.session_id with the file name ('<file>:<id>'), for files that reuse ids")
    j.set_defaults(func=_replay)

    for command in (*sub.choices.values(), *sources.choices.values()):
        command.epilog = EXIT_STATUS
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
