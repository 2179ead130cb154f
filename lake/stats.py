"""`lake stats`: the overview a user checks first, as data, as rich tables and as PNG plots."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lake.duck import Lake

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
        {"bin": float(b), "count": int(n)}
        for b, n in q("""
            WITH s AS (SELECT total_reward AS r FROM sessions WHERE total_reward IS NOT NULL),
                 w AS (SELECT min(r) AS lo, greatest((max(r) - min(r)) / 20, 1e-9) AS width FROM s)
            SELECT lo + width * least(floor((r - lo) / width), 19) AS bin, count(*)
            FROM s, w GROUP BY ALL ORDER BY 1
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


def write_plots(overview: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """PNG bar charts of the overview; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    charts = {
        "sessions_by_status.png": ("sessions by status", overview["sessions_by_status"]),
        "sessions_by_env.png": ("sessions by env", overview["sessions_by_env"]),
        "sessions_by_model.png": ("sessions by model", overview["sessions_by_model"]),
        "achievements_count.png": ("achievements per session", overview["achievements_count"]),
        "top_achievements.png": ("top achievements", overview["achievements"]),
        "messages_by_role.png": ("messages by role", overview["messages_by_role"]),
        "reward_histogram.png": (
            "total_reward histogram",
            {f"{h['bin']:g}": h["count"] for h in overview["reward_histogram"]},
        ),
    }
    for name, (title, data) in charts.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.bar(list(data.keys()), list(data.values()))
        ax.set_title(title)
        ax.tick_params(axis="x", labelrotation=45)
        fig.tight_layout()
        path = out / name
        fig.savefig(path, dpi=80)
        plt.close(fig)
        written.append(path)
    return written
