"""An s3:// lake on a real S3-API server (moto, its own process): every command reads and writes
it like a local folder, snapshots are byte-identical to a local lake's, and no secret leaks."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable

from lake.cli import main as lake_main
from lake.tables import SCHEMAS, SESSIONS, TABLES, table_uri
from streams.devtools.synthetic import expected_counts, make_sessions, poison_records, to_records
from streams.worker.offline import OfflineIngest


def _events(seed: int, n: int = 40):
    sessions = make_sessions(n, 6, seed=seed, obs_chars=80)
    return sessions, to_records(sessions, seed=seed, duplicate_rate=0.1, early_reward_rate=0.2) + poison_records(3, seed=seed)


def _cli(capsys, *argv: str) -> str:
    capsys.readouterr()
    assert lake_main(list(argv)) == 0
    out = capsys.readouterr()
    return out.out + out.err


def _rounded(value):
    if isinstance(value, float):
        return float(f"{value:.9g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def test_s3_lake_snapshot_is_byte_identical_to_local_and_reproducible(s3_lake_factory, s3_server, tmp_path, capsys):
    sessions, records = _events(seed=5)
    local, s3 = str(tmp_path / "lake"), s3_lake_factory()
    for lake in (local, s3):  # the same events, the same batches: the same table versions
        ingest = OfflineIngest(lake, topic="t", batch_rows=150, clock=lambda: 1_800_000_000.0)
        ingest.write(records[: len(records) // 2])
        ingest.write(records[len(records) // 2 :])
    want = {**expected_counts(sessions), "dead_letters": 3}
    assert {t: DeltaTable(table_uri(s3, t)).count() for t in TABLES} == want

    query = "SELECT status, count(*) AS n, sum(num_turns) AS t FROM sessions GROUP BY 1 ORDER BY 1"
    assert _cli(capsys, "sql", query, "--format", "json", "--lake", s3) == _cli(
        capsys, "sql", query, "--format", "json", "--lake", local)
    assert json.loads(_cli(capsys, "stats", "--format", "json", "--lake", s3))["sessions"] == json.loads(
        _cli(capsys, "stats", "--format", "json", "--lake", local))["sessions"]
    # Float sums may differ in the last bits with DuckDB's parallel aggregation order.
    assert _rounded(json.loads(_cli(capsys, "compare", "--format", "json", "--lake", s3))) == _rounded(
        json.loads(_cli(capsys, "compare", "--format", "json", "--lake", local)))

    snaps = {}
    for name, lake in (("local", local), ("s3", s3)):
        out = tmp_path / f"snap-{name}"
        _cli(capsys, "snapshot", "--lake", lake, "--out", str(out), "--min-reward", "0", "--val-fraction", "0.2")
        snaps[name] = out
    assert (snaps["s3"] / "train.jsonl").read_bytes() == (snaps["local"] / "train.jsonl").read_bytes()
    assert (snaps["s3"] / "train.jsonl").stat().st_size > 0
    manifest = json.loads((snaps["s3"] / "manifest.json").read_text())
    assert manifest["lake_uri"] == s3

    # maintain compacts and checkpoints on S3; the manifest's versions still reproduce byte for byte.
    report = json.loads(_cli(capsys, "maintain", "--lake", s3, "--format", "json"))
    assert all(not r["errors"] and r["checkpoint_version"] is not None for r in report), report
    again = tmp_path / "again"
    _cli(capsys, "snapshot", "--from-manifest", str(snaps["s3"] / "manifest.json"), "--out", str(again))
    assert (again / "train.jsonl").read_bytes() == (snaps["s3"] / "train.jsonl").read_bytes()

    secret = s3_server.env["AWS_SECRET_ACCESS_KEY"]
    for folder in (snaps["s3"], again):
        for path in folder.rglob("*"):
            if path.is_file():
                assert secret.encode() not in path.read_bytes(), f"secret in {path}"


def test_lake_s3_settings_override_aws_and_bad_values_are_one_line(s3_server, monkeypatch, capsys):
    from lake.storage import storage_options

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LAKE_S3_ENDPOINT_URL", "http://minio:9000")
    opts = storage_options("s3://b/lake")
    assert opts["aws_endpoint_url"] == "http://minio:9000"
    assert opts["aws_secret_access_key"] == s3_server.env["AWS_SECRET_ACCESS_KEY"]
    assert opts["aws_conditional_put"] == "etag" and "aws_s3_allow_unsafe_rename" not in opts
    assert storage_options("./lake") == {}
    monkeypatch.setenv("AWS_ALLOW_HTTP", "maybe")
    assert lake_main(["sql", "SELECT 1", "--lake", "s3://b/lake"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "allow_http" in err and "'maybe'" in err, err
    monkeypatch.delenv("AWS_ALLOW_HTTP")
    assert lake_main(["sql", "SELECT 1", "--lake", "gs://b/lake"]) == 2
    assert "scheme 'gs' is not supported" in capsys.readouterr().err
    # Nothing listens there: one line naming the table and what to check, never the secret.
    from streams.devtools.broker import free_port

    monkeypatch.setenv("LAKE_S3_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    assert lake_main(["sql", "SELECT 1", "--lake", "s3://b/lake"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot read s3://b/lake/sessions (") and "AWS_ENDPOINT_URL" in err, err
    assert "\n" not in err and s3_server.env["AWS_SECRET_ACCESS_KEY"] not in err


# -- several writers at once ------------------------------------------------------------------


def _session_rows(ids: list[str], offset: int) -> pa.Table:
    n = len(ids)
    cols = {f.name: pa.nulls(n, f.type) for f in SCHEMAS[SESSIONS]}
    cols.update(session_id=pa.array(ids, pa.string()), last_offset=pa.array([offset] * n, pa.int64()),
                num_turns=pa.array([offset] * n, SCHEMAS[SESSIONS].field("num_turns").type),
                finalized=pa.array([False] * n))
    return pa.table(cols, schema=SCHEMAS[SESSIONS])


def _turn_rows(partition: int, offsets: range) -> pa.Table:
    n = len(offsets)
    schema = SCHEMAS["turns"]
    cols = {f.name: pa.nulls(n, f.type) for f in schema}
    cols.update(session_id=pa.array([f"p{partition}-o{o}" for o in offsets], pa.string()),
                turn=pa.array([0] * n, schema.field("turn").type),
                kafka_topic=pa.array(["t"] * n, pa.string()),
                kafka_partition=pa.array([partition] * n, schema.field("kafka_partition").type),
                kafka_offset=pa.array(list(offsets), pa.int64()))
    return pa.table(cols, schema=schema)


def _writer_process(lake: str, partition: int, env: dict[str, str], rounds: int, races_file: str) -> None:
    """One worker's commit cycle on its own partition: an append, then the sessions MERGE; each
    batch is also sent twice (a replay after a crash), which the app transactions must drop."""
    import logging
    import os

    os.environ.update(env)
    from lake.writer import LakeWriter

    races = []  # commits that lost to the other writer's and were run again (the writer logs each)
    handler = logging.Handler()
    handler.emit = lambda record: races.append(1) if "lost a race" in record.getMessage() else None  # type: ignore[method-assign]
    logging.getLogger("lake.writer").addHandler(handler)
    logging.getLogger("lake.writer").setLevel(logging.INFO)
    w = LakeWriter(lake)
    for r in range(rounds):
        offsets = range(r * 10, r * 10 + 10)
        for _ in range(2):
            w.append("turns", _turn_rows(partition, offsets), offsets={("t", partition): offsets[-1]})
            # The same 15 sessions of this partition each round: a MERGE that updates, not only inserts.
            w.upsert_sessions(_session_rows([f"p{partition}-s{i}" for i in range(15)], r),
                              offsets={("t", partition): offsets[-1]})
    Path(races_file).write_text(str(len(races)))


def test_two_writers_append_and_merge_one_s3_table_at_once(s3_lake_factory, s3_server, tmp_path):
    from lake.writer import LakeWriter

    lake = s3_lake_factory()
    LakeWriter(lake).ensure_tables()
    rounds = 8
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer_process, args=(lake, p, s3_server.env, rounds, str(tmp_path / f"races-{p}"))) for p in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(240)
        assert p.exitcode == 0
    turns = DeltaTable(table_uri(lake, "turns")).to_pyarrow_table()
    assert turns.num_rows == 2 * rounds * 10
    assert turns.group_by(["kafka_partition", "kafka_offset"]).aggregate([]).num_rows == turns.num_rows
    sessions = DeltaTable(table_uri(lake, SESSIONS)).to_pyarrow_table().to_pylist()
    assert len(sessions) == 30 and len({s["session_id"] for s in sessions}) == 30
    assert {s["num_turns"] for s in sessions} == {rounds - 1}  # every row holds its writer's last state
    for p in (0, 1):
        assert DeltaTable(table_uri(lake, SESSIONS)).transaction_version(f"rollout-lake:t:{p}") == rounds * 10 - 1
    # The writers did race: a commit found the other's first, and delta-rs rebased it (appends)
    # or the writer ran it again from a fresh read (MERGEs whose files the other one rewrote).
    rebased = sum((h.get("operationMetrics") or {}).get("num_retries", 0) > 0
                  for t in ("turns", SESSIONS) for h in DeltaTable(table_uri(lake, t)).history())
    rerun = sum(int((tmp_path / f"races-{p}").read_text()) for p in (0, 1))
    print(f"commits rebased by delta-rs: {rebased}, run again after a conflict: {rerun}")
    assert rebased + rerun > 0, (rebased, rerun)
