"""`lake stats`: the overview a user checks first, as data, as rich tables and as PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lake.reader import Lake

__all__ = ["lake_overview", "print_overview", "write_plots"]

_BY = {"status": "status", "env": "env_name", "split": "split", "model": "model", "policy": "policy_name"}


def lake_overview(lake: Lake, *, top: int = 20) -> dict[str, Any]:
    """Counts and distributions over the views (latest truth, pinned versions)."""
    q = lake.query

    def pairs(sql: str) -> dict[str, int]:
        return {("(none)" if k is None else str(k)): int(v) for k, v in q(sql).fetchall()}

    out: dict[str, Any] = {"table_versions": dict(lake.versions)}
    out["sessions"] = int(q("SELECT count(*) FROM sessions").fetchone()[0])
    for label, column in _BY.items():
        out[f"sessions_by_{label}"] = pairs(
            f"SELECT {column}, count(*) FROM sessions GROUP BY ALL ORDER BY count(*) DESC, 1 LIMIT {top}"
        )
    r = q("""
        SELECT count(total_reward), min(total_reward), quantile_cont(total_reward, 0.25),
               median(total_reward), quantile_cont(total_reward, 0.75), max(total_reward),
               avg(total_reward), count(*) FILTER (WHERE total_reward IS NULL)
        FROM sessions
    """).fetchone()
    out["reward"] = dict(zip(("count", "min", "p25", "median", "p75", "max", "mean", "missing"), r))
    out["reward_histogram"] = [
        {"bin": float(b), "width": float(w), "count": int(n)}
        for b, w, n in q("""
            WITH s AS (SELECT total_reward AS r FROM sessions WHERE total_reward IS NOT NULL),
                 w AS (SELECT min(r) AS lo, greatest((max(r) - min(r)) / 20, 1e-9) AS width FROM s)
            SELECT lo + width * least(floor((r - lo) / width), 19) AS bin, any_value(width), count(*)
            FROM s, w GROUP BY bin ORDER BY 1
        """).fetchall()
    ]
    out["achievements_count"] = pairs(
        "SELECT coalesce(achievements_count, 0), count(*) FROM sessions GROUP BY ALL ORDER BY 1"
    )
    out["achievements"] = pairs(f"""
        SELECT a, count(*) FROM (SELECT unnest(achievements) AS a FROM sessions)
        GROUP BY a ORDER BY count(*) DESC, a LIMIT {top}
    """)
    out["judgments"] = pairs("SELECT judgment, count(*) FROM sessions GROUP BY ALL ORDER BY count(*) DESC, 1")
    out["objectives"] = pairs("SELECT objective, count(*) FROM latest_rewards GROUP BY ALL ORDER BY 1")
    out["turns"] = int(q("SELECT count(*) FROM raw_turns").fetchone()[0])
    out["messages_by_role"] = pairs("SELECT role, count(*) FROM raw_messages GROUP BY ALL ORDER BY count(*) DESC, 1")
    out["messages"] = sum(out["messages_by_role"].values())
    out["dead_letters"] = int(q("SELECT count(*) FROM raw_dead_letters").fetchone()[0])
    out["dead_letter_errors"] = pairs(f"""
        SELECT split_part(error, ':', 1), count(*) FROM raw_dead_letters
        GROUP BY ALL ORDER BY count(*) DESC, 1 LIMIT {top}
    """)
    return out


def print_overview(overview: dict[str, Any], *, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    versions = ", ".join(f"{k} v{v}" for k, v in overview["table_versions"].items())
    console.print(
        f"[bold]{overview['sessions']}[/] sessions, {overview['turns']} turns, "
        f"{overview['messages']} messages, {overview['dead_letters']} dead letters  ({versions})"
    )

    def counts(title: str, data: dict[str, int], key: str = "value") -> None:
        if not data:
            return
        table = Table(title=title, title_justify="left")
        table.add_column(key)
        table.add_column("count", justify="right")
        for k, v in data.items():
            table.add_row(k, str(v))
        console.print(table)

    for label in _BY:
        counts(f"sessions by {label}", overview[f"sessions_by_{label}"], label)
    rew = Table(title="total_reward (objective 'reward')", title_justify="left")
    for col in overview["reward"]:
        rew.add_column(col, justify="right")
    rew.add_row(*["-" if v is None else f"{v:g}" for v in overview["reward"].values()])
    console.print(rew)
    counts("achievements per session", overview["achievements_count"], "achievements")
    counts("top achievements", overview["achievements"], "achievement")
    counts("judgments", overview["judgments"], "judgment")
    counts("messages by role", overview["messages_by_role"], "role")
    counts("dead letters by error", overview["dead_letter_errors"], "error")


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, bool)


def _save(fig: Any, ax: Any, path: Path, title: str, xlabel: str, ylabel: str) -> Path:
    import matplotlib.pyplot as plt

    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.yaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def write_plots(overview: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """PNG bar charts of the overview; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    charts = {  # file: (title, x axis, y axis, {x: count})
        "sessions_by_status.png": ("sessions by status", "status", "sessions", overview["sessions_by_status"]),
        "sessions_by_env.png": ("sessions by env", "env_name", "sessions", overview["sessions_by_env"]),
        "sessions_by_model.png": ("sessions by model", "model", "sessions", overview["sessions_by_model"]),
        "achievements_count.png": ("achievements per session", "achievements unlocked", "sessions",
                                   overview["achievements_count"]),
        "top_achievements.png": ("top achievements", "achievement", "sessions", overview["achievements"]),
        "messages_by_role.png": ("messages by role", "role", "messages", overview["messages_by_role"]),
    }
    for name, (title, xlabel, ylabel, data) in charts.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        keys = list(data.keys())
        if keys and all(_is_number(k) for k in keys):  # counts of a number: a numeric axis, gaps included
            ax.bar([float(k) for k in keys], list(data.values()), width=0.8)
            ax.xaxis.get_major_locator().set_params(integer=True)
        else:
            ax.bar([str(k) for k in keys], list(data.values()))
            ax.tick_params(axis="x", labelrotation=45)
        written.append(_save(fig, ax, out / name, title, xlabel, ylabel))
    # The histogram's bars sit on a real reward axis: a bar spans its bin, empty bins stay empty.
    hist = overview["reward_histogram"]
    fig, ax = plt.subplots(figsize=(7, 4))
    if hist:
        single = hist[-1]["bin"] == hist[0]["bin"]
        ax.bar([h["bin"] for h in hist], [h["count"] for h in hist], align="center" if single else "edge",
               width=0.8 if single else [h["width"] for h in hist], edgecolor="white")
    written.append(_save(fig, ax, out / "reward_histogram.png", "total_reward histogram",
                         "total_reward (objective 'reward')", "sessions"))
    return written
