"""The demo's report: the comparison read from the lake, one PNG, and a README saying what was trained on what."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["comparison_rows", "print_comparison", "plot_comparison", "write_report"]

# Per-session valid tool-call rate with a normal-approximation 95% interval, as lake.compare does
# for reward and achievements.
_VALID_CI_SQL = """
SELECT s.run_id, 1.96 * stddev_samp(t.valid_rate) / sqrt(count(t.valid_rate)) AS ci95
FROM sessions s
JOIN (SELECT session_id, avg(CASE WHEN valid THEN 1.0 ELSE 0.0 END) AS valid_rate FROM turns GROUP BY 1) t
  USING (session_id)
WHERE s.run_id IN ({ids})
GROUP BY 1
"""


def comparison_rows(lake_uri: str, names: dict[str, str]) -> dict[str, dict[str, Any]]:
    """`lake compare` rows of the runs in `names` (run_id -> label), keyed by label, in that order."""
    from lake.compare import compare_runs
    from lake.reader import connect

    ids = ", ".join(f"'{run_id}'" for run_id in names)
    with connect(lake_uri) as con:
        rows = compare_runs(con, by=("run_id", "policy_name", "model"), where=f"run_id IN ({ids})")
        valid_ci = dict(con.query(_VALID_CI_SQL.format(ids=ids)).fetchall())
    by_id = {r["run_id"]: r for r in rows}
    out = {}
    for run_id, label in names.items():
        if run_id in by_id:
            out[label] = {**by_id[run_id], "valid_tool_call_rate_ci95": valid_ci.get(run_id)}
    return out


def _pm(mean: float | None, ci: float | None) -> str:
    return "-" if mean is None else f"{mean:.2f} ± {ci or 0:.2f}"


def print_comparison(console: Any, runs: dict[str, dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title="Crafter players on the lake (mean ± 95% CI over sessions)")
    for col in ("player", "sessions", "turns", "valid tool-call rate", "achievements", "reward"):
        table.add_column(col)
    for label, r in runs.items():
        table.add_row(
            label, str(r["sessions"]), f"{r['turns_mean'] or 0:.1f}",
            _pm(r["valid_tool_call_rate"], r["valid_tool_call_rate_ci95"]),
            _pm(r["achievements_mean"], r["achievements_ci95"]), _pm(r["reward_mean"], r["reward_ci95"]),
        )
    console.print(table)


def plot_comparison(path: Path, runs: dict[str, dict[str, Any]], loss_history: list[dict[str, Any]]) -> Path:
    """Valid tool-call rate and achievements per player (95% intervals) next to the training loss."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 4), dpi=100)
    axes = fig.subplots(1, 3)
    labels = list(runs)
    colors = {"teacher": "#999999", "base": "#d95f02", "fine-tuned": "#1b9e77"}
    for ax, (key, title) in zip(axes[:2], (("valid_tool_call_rate", "valid tool-call rate"),
                                           ("achievements_mean", "achievements per episode"))):
        ci_key = "valid_tool_call_rate_ci95" if key == "valid_tool_call_rate" else "achievements_ci95"
        values = [runs[label][key] or 0.0 for label in labels]
        errors = [runs[label][ci_key] or 0.0 for label in labels]
        ax.bar(labels, values, yerr=errors, capsize=6, color=[colors.get(label, "#7570b3") for label in labels])
        for i, v in enumerate(values):
            ax.annotate(f"{v:.2f}", (i, v), ha="center", va="bottom", xytext=(10, 2), textcoords="offset points")
        ax.set_title(f"{title} (95% CI)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylim(0, 1.1)
    train = [(p["step"], p["loss"]) for p in loss_history if "loss" in p]
    if train:
        axes[2].plot(*zip(*train), marker=".")
    axes[2].set_title("fine-tune loss (assistant tokens)")
    axes[2].set_xlabel("optimizer step")
    axes[2].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_report(report: Path, comparison: dict[str, Any], *, lake: str) -> str:
    """comparison.png and README.md in `report`; returns the one-line verdict."""
    summary_path = report / "training_summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    manifest = json.loads((report / "snapshot_manifest.json").read_text())
    runs = comparison["runs"]
    plot_comparison(report / "comparison.png", runs, summary.get("loss_history", []))
    base, tuned = runs.get("base", {}), runs.get("fine-tuned", {})
    rate = lambda r: r.get("valid_tool_call_rate") or 0.0  # noqa: E731
    ach = lambda r: r.get("achievements_mean") or 0.0  # noqa: E731
    verdict = (
        f"fine-tuned vs base: valid tool-call rate {rate(tuned):.2f} vs {rate(base):.2f}, "
        f"achievements {ach(tuned):.2f} vs {ach(base):.2f} per held-out episode"
        + (" -> the fine-tune is better on both" if rate(tuned) > rate(base) and ach(tuned) > ach(base) else "")
    )
    rows = [
        f"| {label} | {r['sessions']} | {r['turns_mean'] or 0:.1f} | {_pm(r['valid_tool_call_rate'], r['valid_tool_call_rate_ci95'])} "
        f"| {_pm(r['achievements_mean'], r['achievements_ci95'])} | {_pm(r['reward_mean'], r['reward_ci95'])} |"
        for label, r in runs.items()
    ]
    spec = {k: v for k, v in (manifest.get("spec") or {}).items() if v not in (None, [], {}, False)}
    model = summary.get("model", {})
    counts = manifest.get("counts") or {}
    timings = comparison.get("timings", {})
    text = "\n".join([
        "# make demo report",
        "",
        verdict + ".",
        "",
        "![base vs fine-tuned](comparison.png)",
        "",
        "| player | sessions | turns | valid tool-call rate | achievements | reward |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        f"Mean ± 95% interval over sessions, computed by `lake compare` from the lake at `{lake}`. "
        f"Held-out seeds {comparison['held_out_seeds']}: no teacher episode was played on them.",
        "",
        "## What was trained on what",
        "",
        f"- **Model**: `{model.get('source', '?')}` ({model.get('kind', '?')}) fine-tuned into `{model.get('output', '?')}`, "
        f"{summary.get('steps', '?')} steps, lr {summary.get('config', {}).get('learning_rate', '?')}, "
        f"batch {summary.get('config', {}).get('per_device_train_batch_size', '?')}, on {summary.get('device', {}).get('name', '?')}; "
        f"loss {summary.get('first_loss', 0) or 0:.3f} -> {summary.get('final_loss', 0) or 0:.3f}, "
        f"{summary.get('tokens_seen', 0)} tokens at {summary.get('tokens_per_second') or 0:.0f} tokens/s.",
        f"- **Snapshot**: `{comparison['snapshot']}`, manifest sha256 `{summary.get('manifest_sha256', '?')}`, "
        f"examples {json.dumps(counts.get('examples'))} from {counts.get('sessions_kept', '?')} of "
        f"{counts.get('sessions_total', '?')} sessions; spec `{json.dumps(spec, sort_keys=True)}`.",
        f"- **Lake table versions** pinned by the snapshot: `{json.dumps(manifest.get('table_versions', {}), sort_keys=True)}`.",
        "- Reproduce the data: `python -m lake snapshot --from-manifest snapshot_manifest.json --out snap2/`.",
        "",
        "## Time per stage",
        "",
        *[f"- {name}: {seconds:.0f} s" for name, seconds in timings.items()],
        "",
        "Files: `comparison.json` (per run: sessions, valid_tool_call_rate, achievements_mean and their intervals), "
        "`training_summary.json`, `loss_curve.png`, `snapshot_manifest.json`, `plots/` (lake stats).",
        "",
    ])
    (report / "README.md").write_text(text)
    return verdict
