"""`lake stats --plots`: charts a reader can trust: numeric axes where the data are numbers, titled axes."""

from __future__ import annotations

import lake.stats as stats
from lake.reader import connect

from .conftest import session_events


def test_reward_histogram_bars_sit_on_a_numeric_reward_axis(lake_factory, tmp_path, monkeypatch):
    events = []
    for i, (reward, n) in enumerate([(8.0, 1), (10.0, 2), (10.75, 1), (11.0, 3)]):
        for j in range(n):
            events += session_events(f"s{i}-{j}", reward=reward, achievements=["a"] * (i % 2 + 1))
    uri = lake_factory(events)
    with connect(uri) as lake:
        overview = stats.lake_overview(lake)
    drawn = {}
    save = stats._save

    def capture(fig, ax, path, title, xlabel, ylabel):
        drawn[path.name] = (xlabel, ylabel, [(p.get_x(), p.get_width(), p.get_height()) for p in ax.patches])
        return save(fig, ax, path, title, xlabel, ylabel)

    monkeypatch.setattr(stats, "_save", capture)

    written = stats.write_plots(overview, tmp_path / "plots")

    assert all(p.stat().st_size > 0 for p in written)
    xlabel, ylabel, bars = drawn["reward_histogram.png"]
    assert (xlabel, ylabel) == ("total_reward (objective 'reward')", "sessions")
    width = (11.0 - 8.0) / 20
    # Each bar starts at its bin on the reward axis (8 -> 11 in 20 bins), not at evenly spaced slots.
    assert [(round(x, 6), round(w, 6), h) for x, w, h in bars] == [
        (8.0, width, 1), (round(8.0 + 13 * width, 6), width, 2), (round(8.0 + 18 * width, 6), width, 1),
        (round(8.0 + 19 * width, 6), width, 3)]
    assert all(label for label, _, _ in drawn.values())
    _, _, ach = drawn["achievements_count.png"]
    assert sorted(round(x + w / 2, 6) for x, w, _ in ach) == [1.0, 2.0]
