"""The README runs as written: the five-minute tour literally, then every other block that can run here.

The tour runs in a fresh folder outside the repository against a fresh broker and worker; the
only change is the ports (the block's `9092`, and KAFKA_BOOTSTRAP_SERVERS / WEB_PORT to match, and a
free `--port` for `lake ui`).
When the README changes, these tests follow it: every bash line is run unless it is listed in
NOT_HERE with the reason it cannot run on this machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.devtools.broker import free_port

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
TOUR_LIMIT_S = 900

# README lines that cannot run inside `make test` on this machine, and why.
NOT_HERE = {
    "make test": "this test runs inside it",
    "make demo": "12-14 minutes; the demo has its own tests (tests/examples)",
    "--model HuggingFaceTB/SmolLM2-360M-Instruct": "downloads from the Hugging Face hub (offline here)",
    "accelerate launch": "several GPUs",
    "--model runs/smol360": "needs the hub model trained above",
    "--exclude-tasks-from eval/": "needs an `eval/` snapshot of held-out tasks (tests/lake/test_decontam*)",
    "--format preference": "needs several rollouts per task (tests/lake/test_preference.py)",
    "--use_peft": "a second full training run; LoRA is tested in tests/trainer",
    "python -m trainer --snapshot snap/ --max-steps 2": "whole sessions: ~10 CPU minutes here; the tour trains the same way",
    "docker compose": "no Docker engine here; tests/test_compose.py checks the wiring",
}


def blocks(text: str) -> list[tuple[str, str, str]]:
    """(heading, language, body) of every fenced code block."""
    out, heading = [], ""
    for m in re.finditer(r"^(#{2,3} [^\n]+)$|^```(\w*)\n(.*?)^```$", text, re.M | re.S):
        if m.group(1):
            heading = m.group(1).lstrip("# ").strip()
        else:
            out.append((heading, m.group(2), m.group(3)))
    return out


def commands(body: str) -> list[str]:
    return [line for line in body.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def not_here(line: str) -> str | None:
    return next((why for key, why in NOT_HERE.items() if key in line), None)


def tour_block() -> str:
    found = [body for heading, lang, body in blocks(README.read_text()) if heading == "A five-minute tour" and lang == "bash"]
    assert len(found) == 1, "the README has one bash block under '## A five-minute tour'"
    return found[0]


class Shell:
    """Runs README lines with bash in a scratch folder; background jobs die with it."""

    def __init__(self, cwd: Path, env: dict[str, str], port: int, web_port: int, ui_port: int = 0) -> None:
        self.cwd, self.env, self.port, self.web_port, self.ui_port = cwd, env, port, web_port, ui_port
        self.procs: list[subprocess.Popen[str]] = []

    def run(self, script: str, *, timeout: float, name: str) -> tuple[str, float]:
        path = self.cwd / f".{name}.sh"
        path.write_text("set -euo pipefail\n" + script)
        log = self.cwd / f".{name}.log"
        started = time.monotonic()
        with open(log, "w") as out:
            proc = subprocess.Popen(["bash", str(path)], cwd=self.cwd, env=self.env, stdout=out,
                                    stderr=subprocess.STDOUT, text=True, start_new_session=True)
            self.procs.append(proc)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.stop()
                pytest.fail(f"{name} ran past {timeout} s; log tail:\n{log.read_text()[-4000:]}")
        elapsed = time.monotonic() - started
        text = log.read_text()
        assert rc == 0, f"{name} exited {rc} after {elapsed:.0f} s; log tail:\n{text[-6000:]}"
        return text, elapsed

    def stop(self) -> None:
        """SIGTERM every process group we started (the broker stops Tansu), then SIGKILL what is left."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for proc in self.procs:
                try:
                    os.killpg(proc.pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(3 if sig == signal.SIGTERM else 0)
        # Tansu runs in its own session; it is ours if it listens on our port.
        for pid_dir in Path("/proc").glob("[0-9]*"):
            try:
                cmdline = (pid_dir / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "tansu" in cmdline and f":{self.port} " in cmdline + " ":
                try:
                    os.kill(int(pid_dir.name), signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shell, str, float]]:
    """The tour block as written, in a scratch folder outside the repository."""
    scratch = tmp_path_factory.mktemp("newcomer")
    port, web, ui = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LAKE_", "ROLLOUT_", "KAFKA_", "WORKER_", "PYTEST"))}
    env.update({
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
        "WEB_PORT": str(web),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    })
    shell = Shell(scratch, env, port, web, ui)
    script = tour_block().replace("--port 9092", f"--port {port}")
    assert script.count(str(port)) == 1
    assert script.count("python -m lake ui &") == 1
    script = script.replace("python -m lake ui &", f"python -m lake ui --port {ui} &")
    try:
        out, elapsed = shell.run(script, timeout=TOUR_LIMIT_S, name="tour")
        print(f"\nREADME tour: {elapsed:.0f} s", file=sys.stderr)
        yield shell, out, elapsed
    finally:
        shell.stop()


@pytest.mark.slow
def test_the_tour_runs_as_written_from_a_fresh_folder(tour):
    shell, out, elapsed = tour
    root = shell.cwd
    manifest = json.loads((root / "snapshots" / "v1" / "manifest.json").read_text())
    assert manifest["lake_uri"] == str((root / "lake").resolve())
    assert manifest["counts"]["examples"]["train"] > 0 and manifest["counts"]["examples"]["val"] > 0
    summary = json.loads((root / "runs" / "v1" / "training_summary.json").read_text())
    assert summary["steps"] == 2
    metrics = json.loads(out[out.rindex('{\n  "model"'):][: out[out.rindex('{\n  "model"'):].index("\n}") + 2])
    assert metrics["split"] == "val" and metrics["eval_loss"] > 0 and metrics["tool_call_prompts"] == 4
    assert "lake holds all" in out
    assert not (root / "rollout-lake-data").exists()
    # The UI the tour left running lists the six episodes (tests/lake/ui drives it in a browser).
    with urllib.request.urlopen(f"http://127.0.0.1:{shell.ui_port}/", timeout=60) as page:
        assert '<strong id="matched">6</strong> of <span id="total">6</span>' in page.read().decode()
    assert elapsed < TOUR_LIMIT_S


def _other_bash_lines() -> list[tuple[str, str]]:
    lines = []
    for heading, lang, body in blocks(README.read_text()):
        if lang == "bash" and heading != "A five-minute tour":
            lines += [(heading, line) for line in commands(body)]
    return lines


@pytest.mark.slow
def test_every_other_readme_block_runs_here_or_says_why_not(tour):
    """After the tour, in its folder with its broker and worker still running: every bash line that can run here."""
    shell, _, _ = tour
    root = shell.cwd
    _sample_traces(root)
    toml = [body for heading, lang, body in blocks(README.read_text()) if lang == "toml"]
    assert toml, "the README shows a synth-ai filter.toml"
    (root / "filter.toml").write_text(toml[0])
    ran, skipped, times = [], [], []
    for heading, line in _other_bash_lines():
        why = not_here(line)
        if why:
            skipped.append((line, why))
            continue
        # What a replay published must be in the lake before the next line queries it.
        wait = "\npython -m lake wait --until-offset-caught-up --timeout 120" if "streams replay" in line else ""
        script = line.replace("localhost:6066", f"localhost:{shell.web_port}")  # the port, as for the broker
        _, elapsed = shell.run(script + wait + "\n", timeout=600, name=f"line{len(ran)}")
        ran.append(line)
        times.append(f"{elapsed:.0f}s {line[:60]}")
    assert any("replay sqlite" in line for line in ran) and any("--from-manifest" in line for line in ran)
    assert (root / "snap2" / "train.jsonl").read_bytes() == (root / "snap" / "train.jsonl").read_bytes()
    synth = [json.loads(x) for x in (root / "ft_data" / "crafter_filtered" / "train.jsonl").read_text().splitlines()]
    kept = {r["metadata"]["session_id"] for r in synth}
    assert "sess-a" in kept and "sess-b" not in kept  # sess-b has no outcome reward
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in synth)
    print("\nREADME lines: " + "; ".join(times) + "\nskipped: "
          + "; ".join(f"{line[:50]} ({why})" for line, why in skipped), file=sys.stderr)


def _sample_traces(root: Path) -> None:
    """The files the 'Bringing existing traces' block names: a synth-ai database and per-rollout SFT JSONL."""
    from tests.conftest import make_synth_db

    (root / "traces" / "v3").mkdir(parents=True)
    make_synth_db(root / "traces" / "v3" / "crafter_eval.db")
    sft = root / "ft_data" / "crafter_sft"
    sft.mkdir(parents=True)
    for i in range(2):
        line = {"messages": [{"role": "system", "content": "You are playing Crafter."},
                             {"role": "user", "content": f"observation {i}"},
                             {"role": "assistant", "content": "move_left"}],
                "metadata": {"session_id": f"sft-{i}", "turn": 0, "reward": 1.0}}
        (sft / f"sft_run{i}.jsonl").write_text(json.dumps(line) + "\n")
