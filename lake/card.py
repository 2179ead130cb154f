"""The dataset card: README.md inside every snapshot, for the people and tools that pick it up.

What was kept and dropped (and why), a reward histogram, and the lineage (lake, table
versions, code revision, spec). Its YAML header is a Hugging Face dataset card, so
`datasets.load_dataset(DIR)` finds the splits; `load_dataset("json", data_files=...)` works too.
The card is not in the manifest's sha256 list: it carries the time and code revision of the
run, and reproduction checks the data, not the prose.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from schemas.manifest import CARD_FILE, TRAIN_FILE, VAL_FILE

__all__ = ["CARD", "render_card", "histogram"]

CARD = CARD_FILE
_WIDTH = 40


def histogram(values: Sequence[float], bins: int = 10) -> list[tuple[float, float, int]]:
    """(low, high, count) over equal-width bins from min to max; the last bin is closed."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return []
    lo, hi = min(vals), max(vals)
    if lo == hi:
        return [(lo, hi, len(vals))]
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in vals:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return [(lo + i * width, lo + (i + 1) * width, n) for i, n in enumerate(counts)]


def _bars(hist: list[tuple[float, float, int]]) -> str:
    if not hist:
        return "(no rewards)"
    top = max(n for _, _, n in hist) or 1
    return "\n".join(f"[{a:>9.3g}, {b:>9.3g}{']' if i == len(hist) - 1 else ')'} {n:>7} {'#' * round(_WIDTH * n / top)}"
                     for i, (a, b, n) in enumerate(hist))


def _non_default(spec: Mapping[str, Any]) -> dict[str, Any]:
    from lake.spec import SnapshotSpec

    defaults = SnapshotSpec().to_dict()
    return {k: v for k, v in spec.items() if defaults.get(k, object()) != v}


def render_card(manifest: Mapping[str, Any], stats: Mapping[str, Any], rewards: Sequence[float]) -> str:
    """The README.md text for a snapshot (manifest and stats as written, kept sessions' rewards)."""
    c = manifest["counts"]
    spec = manifest["spec"]
    files = manifest["files"]
    fmt = spec.get("format", "messages")
    # An empty JSONL file cannot be loaded by `datasets`: only splits with lines are listed.
    splits = [(n, f) for n, f in (("train", TRAIN_FILE), ("validation", VAL_FILE)) if files[f]["rows"]]
    yaml = ["---"]
    if splits:
        yaml += ["configs:", "- config_name: default", "  data_files:"]
        yaml += [f"  - split: {name}\n    path: {path}" for name, path in splits]
    yaml += ["tags:", "- rollout-lake", f"- {fmt}", "---"]
    dropped = c.get("dropped") or {}
    kept = stats.get("kept_sessions", {})
    lines = [
        *yaml, "",
        f"# Rollout snapshot ({fmt})", "",
        f"{c['examples']['train']:,} train and {c['examples']['val']:,} val lines from "
        f"{c['sessions_kept']:,} of {c['sessions_total']:,} sessions, cut from the rollout lake "
        f"`{manifest['lake_uri']}` on {manifest['created_at']}.", "",
        "## Files", "",
        "| file | lines | bytes | sha256 |", "|---|---|---|---|",
        *[f"| {n} | {f.get('rows', '')} | {f['bytes']:,} | `{f['sha256']}` |" for n, f in sorted(files.items())],
        "", "## Load", "",
        "```python",
        "import datasets",
        "ds = datasets.load_dataset(\"json\", data_files={"
        + ", ".join(f'"{n}": "{f}"' for n, f in splits) + "})",
        "```", "",
        _shape(fmt, spec), "",
        "## Filters", "",
        "```json", json.dumps(_non_default(spec), indent=2, sort_keys=True) or "{}", "```", "",
        "## Sessions kept and dropped", "",
        "| | sessions |", "|---|---|",
        f"| total | {c['sessions_total']:,} |",
        f"| kept | {c['sessions_kept']:,} (train {c['sessions_train']:,}, val {c['sessions_val']:,}) |",
        *[f"| dropped: {reason} | {n:,} |" for reason, n in sorted(dropped.items())],
        "",
        "A session is counted once, under the first filter it fails (in the order of the spec).", "",
    ]
    if "preference" in c:
        p = c["preference"]
        lines += ["## Preference pairs", "",
                  f"{p['pairs']:,} pairs from {p['tasks']:,} tasks ({p['sessions_paired']:,} sessions).", ""]
        lines += [f"- not paired: {reason}: {n:,}" for reason, n in p["not_paired"].items()] + [""]
    if manifest.get("decontamination"):
        lines += ["## Decontamination", "", "```json",
                  json.dumps(manifest["decontamination"], indent=2, sort_keys=True), "```", ""]
    summary = kept.get("reward", {})
    lines += ["## Reward of the kept sessions", "",
              f"count {summary.get('count', 0):,}, min {summary.get('min')}, median {summary.get('median')}, "
              f"mean {summary.get('mean')}, max {summary.get('max')}", "",
              "```", _bars(histogram(rewards)), "```", ""]
    by = [(k, kept.get(k)) for k in ("by_env", "by_model", "by_split", "by_status") if kept.get(k)]
    if by:
        lines += ["## Kept sessions by", ""]
        lines += [f"- {k.removeprefix('by_')}: " + ", ".join(f"{a} {n:,}" for a, n in v.items()) for k, v in by] + [""]
    lines += [
        "## Lineage", "",
        f"- lake: `{manifest['lake_uri']}`",
        "- Delta table versions: " + ", ".join(f"{t} {v}" for t, v in manifest["table_versions"].items()),
        f"- code: `{manifest['code_version']}` (rollout-lake version + git revision)",
        "- full spec, counts and sha256 sums: `manifest.json`", "",
        "Reproduce byte for byte (while the table versions are within the vacuum retention):", "",
        "```bash", "python -m lake snapshot --from-manifest manifest.json --out copy/", "```", "",
    ]
    return "\n".join(lines)


def _shape(fmt: str, spec: Mapping[str, Any]) -> str:
    mask = (' Assistant messages of invalid or zero-reward turns carry `"weight": 0`: context, no loss.'
            if spec.get("mask_invalid_turns") else "")
    if fmt == "preference":
        return ("Each line: `prompt`, `chosen`, `rejected` (OpenAI chat messages, TRL DPOTrainer's "
                "conversational preference shape), `tools`, `metadata` (task, both sessions, rewards, margin).")
    if fmt == "prompt_completion":
        return ("Each line: `prompt` and `completion` (OpenAI chat messages), `tools`, `metadata`." + mask)
    return "Each line: `messages` (OpenAI chat format), `tools`, `metadata` (the session)." + mask
