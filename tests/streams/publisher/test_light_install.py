"""`pip install rollout-lake` (no extras) in a fresh venv: the SDK publishes a whole session and
nothing heavy is installed, let alone imported; the commands of the extras say which one to add."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path

import pytest

from schemas import parse_event
from tests.streams.conftest import read_topic

# A pip install of the checkout (about 8-15 s here, most of it building the wheel): slow.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
HEAVY = ("faust", "deltalake", "duckdb", "torch", "pyarrow", "numpy", "transformers", "tqdm", "rich")

PUBLISH = r'''
import asyncio, importlib.util, json, sys
from pathlib import Path

from streams import RolloutPublisher

async def main(bootstrap, topic):
    async with RolloutPublisher(bootstrap_servers=bootstrap, topic=topic) as pub:
        async with pub.session(env_name="crafter", policy_name="react", model="gpt-4o-mini",
                               task_id="seed-7", split="train", seed=7) as session:
            for turn in range(2):
                await session.turn(
                    messages=[{"role": "user", "content": f"observation {turn}"},
                              {"role": "assistant", "content": None, "tool_calls": [{
                                  "id": f"c{turn}", "type": "function",
                                  "function": {"name": "act", "arguments": '{"actions": ["noop"]}'}}]},
                              {"role": "tool", "tool_call_id": f"c{turn}", "content": "ok"}],
                    reward=1.0, achievements=["collect_wood"] if turn else [])
        await pub.outcome_reward(session.session_id, total_reward=2.0, achievements=["collect_wood"])
    return session.session_id

session_id = asyncio.run(main(sys.argv[1], sys.argv[2]))
import streams
heavy = sys.argv[3].split(",")
print(json.dumps({
    "session_id": session_id,
    "streams_file": streams.__file__,
    "imported": sorted(m for m in sys.modules if m.partition(".")[0] in heavy + ["lake", "trainer"]
                       or m.startswith("streams.worker")),
    "installed": [m for m in heavy if importlib.util.find_spec(m) is not None],
}))
'''


@pytest.fixture(scope="module")
def light_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv without system site-packages holding `pip install .` of this checkout, no extras."""
    tmp = tmp_path_factory.mktemp("light-install")
    # A copy of the sources: the build writes build/ and *.egg-info next to them.
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in sorted({pattern.rstrip("*").rstrip(".") for pattern in include}):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # This environment's pip installs into the new one (--python): no ensurepip, the same pip cache.
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
         "-c", str(ROOT / "constraints.txt"), str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, f"pip install of the base package failed:\n{done.stdout}\n{done.stderr}"
    print(f"base install into a fresh venv: {time.monotonic() - started:.1f}s")
    return python


def _run(python: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    # -I: the checkout (cwd, PYTHONPATH, user site) stays out of sys.path; only the venv's copy counts.
    return subprocess.run([str(python), "-I", *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)


def test_base_install_publishes_a_session_with_nothing_heavy(light_venv, broker, topic_factory, tmp_path):
    topic = topic_factory(partitions=2)
    script = tmp_path / "publish.py"
    script.write_text(PUBLISH)

    done = _run(light_venv, str(script), broker.bootstrap_servers, topic, ",".join(HEAVY), cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert Path(report["streams_file"]).is_relative_to(light_venv.parent.parent), report["streams_file"]
    assert report["installed"] == [], f"the base install pulled in {report['installed']}"
    assert report["imported"] == [], f"the SDK imported {report['imported']}"

    events = [parse_event(value) for _, _, key, value in read_topic(broker.bootstrap_servers, topic)
              if key == report["session_id"].encode()]
    assert sorted(e.type for e in events) == ["outcome_reward", "session_end", "session_start", "turn", "turn"]
    turns = sorted((e for e in events if e.type == "turn"), key=lambda e: e.turn)
    assert [t.turn for t in turns] == [0, 1]
    assert turns[0].messages[1].tool_calls[0].function.name == "act"
    assert next(e for e in events if e.type == "session_end").num_turns == 2
    assert next(e for e in events if e.type == "outcome_reward").total_reward == 2.0


@pytest.mark.parametrize(
    ("argv", "needs"),
    [
        (["-m", "streams", "broker", "--port", "1"], "the embedded broker needs the worker extra"),
        (["-c", "import streams.worker.app"], "needs the worker extra"),
        (["-m", "lake", "sql", "SELECT 1"], "`python -m lake sql` needs the lake extra"),
        (["-m", "trainer", "--snapshot", "nowhere"], "`python -m trainer` needs the train extra"),
    ],
    ids=["broker", "worker", "lake", "trainer"],
)
def test_base_install_commands_name_the_missing_extra(light_venv, tmp_path, argv, needs):
    done = _run(light_venv, *argv, cwd=tmp_path)

    extra = re.search(r"needs the (\w+) extra", needs).group(1)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert needs in lines[0] and f"pip install 'rollout-lake[{extra}]'" in lines[0], lines[0]


def test_base_install_replays_traces_without_a_progress_bar(light_venv, tmp_path):
    traces = tmp_path / "sft.jsonl"
    traces.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
                                  "metadata": {"session_id": "s1"}}) + "\n")

    done = _run(light_venv, "-m", "streams", "replay", "jsonl", str(traces), "--dry-run", cwd=tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "replayed 1 sessions (3 events) from " + str(traces) + " validated (dry run)"
