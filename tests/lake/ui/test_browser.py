"""`python -m lake ui` in headless Chromium: the pages a user clicks through, on a lake the worker's code wrote."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import quote

from tests.lake.ui.conftest import HUGE_CHARS, HUGE_ID, LATE_ID, PLAIN, XSS_ID, XSS_TEXT, plain_sessions

TOTAL = PLAIN + 3  # + the script, huge and late-reward sessions


def test_sessions_list_shows_counts_and_pages(page, ui_url):
    page.goto(ui_url)
    assert page.locator("#matched").inner_text() == str(TOTAL)
    assert page.locator("#total").inner_text() == str(TOTAL)
    assert page.locator("#sessions tbody tr").count() == 50
    assert "page 1 of 2" in page.locator(".pager").inner_text()
    page.click("#next")
    assert page.locator("#sessions tbody tr").count() == TOTAL - 50
    assert "page 2 of 2" in page.locator(".pager").inner_text()
    assert page.dialogs == []


def test_filter_form_narrows_the_list_and_prints_the_exact_snapshot_command(page, ui_url, ui_lake):
    page.goto(ui_url)
    suggested = lambda key: [o.get_attribute("value") for o in page.locator(f"#choices-{key} option").all()]  # noqa: E731
    assert suggested("models") == ["gpt-4o-mini", "gpt-a", "gpt-b"]
    assert suggested("judgment") == ["acceptable"]  # a late judgment, from the rewards table
    assert suggested("required_achievements") == ["collect_wood", "place_table"]
    page.fill("input[name=models]", "gpt-b")
    page.fill("input[name=min_reward]", "2")
    page.fill("input[name=splits]", "train")
    page.click("#apply")
    expected = sorted(s["sid"] for s in plain_sessions()
                      if s["model"] == "gpt-b" and s["reward"] >= 2 and s["split"] == "train")
    assert len(expected) >= 3
    assert page.locator("#matched").inner_text() == str(len(expected))
    shown = sorted(page.locator("#sessions tbody tr td:first-child a").all_inner_texts())
    assert shown == expected
    assert set(page.locator("#sessions tbody tr td:nth-child(3)").all_inner_texts()) == {"gpt-b"}
    assert "models=gpt-b" in page.url and "min_reward=2" in page.url  # GET: the filtered list is a link

    command = page.locator("#snapshot-command").inner_text()
    assert command == (f"python -m lake snapshot --out snapshots/NAME --lake {ui_lake} "
                       "--min-reward 2 --splits train --models gpt-b")
    # The printed command keeps the same sessions.
    argv = shlex.split(command)[1:] + ["--dry-run"]
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["counts"]["sessions_kept"] == len(expected)


def test_a_bad_filter_value_is_one_clear_line(page, ui_url):
    response = page.goto(ui_url + "?min_achievements=lots")
    assert response.status == 400
    error = page.locator("#error").inner_text()
    assert "min_achievements" in error and "lots" in error
    assert page.locator("input[name=min_achievements]").input_value() == "lots"


def test_session_page_shows_turns_tool_calls_results_and_late_rewards(page, ui_url):
    page.goto(ui_url + "?task_ids=task-s004")
    page.click("#sessions tbody tr td:first-child a")
    assert page.locator("#session-id").inner_text() == "s004"
    turns = page.locator("#turns section.turn")
    assert turns.count() == 3  # s004: 2 + 4 % 3 turns
    for t in range(3):
        turn = page.locator(f"#turn-{t}")
        assert turn.locator(".msg").count() == 4
        assert turn.locator(".msg[data-role=user] .content").inner_text() == f"s004 observation {t}"
        assert turn.locator(".tool-call .tool-name").inner_text() == "act"
        assert json.loads(turn.locator(".tool-call .tool-args").inner_text()) == {"actions": [f"move_{t}"]}
        assert turn.locator(".msg[data-role=tool] .content").inner_text() == f"ok {t}"
        assert "step reward 0.5" in turn.locator(".head").inner_text()
    # the system prompt repeats every turn; after the first it is folded
    assert page.locator("#turn-1 .msg[data-role=system] details").count() == 1

    page.goto(ui_url + "session?id=" + quote(LATE_ID))
    assert page.locator("#total-reward").inner_text() == "2"
    assert page.locator("#judgment").inner_text() == "acceptable"
    rows = page.locator("#rewards tbody tr").all_inner_texts()
    assert len(rows) == 3
    assert "superseded" in rows[0] and "+60.0 min" in rows[0]  # the first reward, an hour after the start
    assert "yes" in rows[1] and "2026-11-01 12:00:00Z" in rows[1]
    assert "judgment" in rows[2] and "acceptable" in rows[2] and "yes" in rows[2]


def test_runs_page_charts_compare_with_intervals(page, ui_url):
    page.goto(ui_url + "runs")
    assert page.locator("#group-by").inner_text() == "model,run_id"
    charts = page.locator("svg.chart")
    assert charts.count() == 3
    groups = page.locator("#runs tbody tr")
    assert groups.count() == 5  # gpt-a/gpt-b x run-1/run-2, and gpt-4o-mini/run-1 (the huge and late ones)
    assert charts.nth(0).locator("circle.mean").count() == 5
    assert charts.nth(0).locator("line.ci").count() == 5
    labels = charts.nth(0).locator("text.group").all_text_contents()
    assert "gpt-b / run-2" in labels
    # the same numbers as `lake compare`
    row = next(r for r in groups.all_inner_texts() if r.startswith("gpt-b\trun-2"))
    mine = [s for s in plain_sessions() if s["model"] == "gpt-b" and s["run"] == "run-2"]
    assert f"\t{len(mine)}\t" in row
    page.click("a[href='/runs?by=run_id']")
    assert page.locator("#runs tbody tr").count() == 2


def test_a_script_in_a_message_is_shown_as_text_and_never_runs(page, ui_url):
    page.goto(ui_url + "session?id=" + quote(XSS_ID))
    assert page.locator("#session-id").inner_text() == XSS_ID
    assert page.locator("#turn-0 .msg[data-role=user] .content").inner_text() == XSS_TEXT
    assert page.locator("#turn-0 .tool-name").inner_text() == "<script>alert(3)</script>"
    assert "</pre><script>" in page.locator("#turn-0 .msg[data-role=tool]").inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("script").count() == 0 and page.locator("main img").count() == 0
    page.goto(ui_url + "?models=gpt-a&sort=session_id&size=100")
    page.click(f"#sessions a:text-is('{XSS_ID[:40]}')")  # the id survives the link's URL encoding
    assert page.locator("#session-id").inner_text() == XSS_ID
    page.goto(ui_url + "dead-letters")
    assert "<script>alert(4)</script>" in page.locator("#dead-letters .preview").inner_text()
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.dialogs == []


def test_a_huge_message_is_cut_with_a_link_to_the_whole(page, ui_url):
    page.goto(ui_url + "session?id=" + quote(HUGE_ID))
    shown = page.locator("#turn-0 .msg[data-role=user] .content").inner_text()
    assert len(shown) == 4000 and "END" not in shown
    page.click("#turn-0 a.whole")
    whole = page.locator("#whole").inner_text()
    assert len(whole) == HUGE_CHARS and whole.endswith("END")
    response = page.goto(page.url + "&raw=1")
    assert response.headers["content-type"].startswith("text/plain") and response.headers["x-content-type-options"] == "nosniff"
    assert len(response.text()) == HUGE_CHARS


def test_dead_letters_and_tasks_pages(page, ui_url):
    page.goto(ui_url + "dead-letters")
    assert page.locator("#dead-count").inner_text() == "1"
    preview = page.locator("#dead-letters .preview").inner_text()
    assert preview.startswith("\\xff\\xfe{")
    page.click("#dead-letters tbody a")
    assert page.locator("#raw").inner_text().startswith("\\xff\\xfe{")

    page.goto(ui_url + "tasks?sort=mean")
    rows = page.locator("#tasks tbody tr")
    assert rows.count() == TOTAL  # one task per session, each with an outcome reward
    first = rows.nth(0).inner_text().split("\t")
    assert first[1] == "reward" and float(first[3]) == 3.0


def test_read_only_and_loopback_only(ui_url):
    def status(method: str, url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str]]:
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method=method, headers=headers or {})) as r:
                return r.status, dict(r.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers)

    code, headers = status("GET", ui_url)
    assert code == 200
    assert "default-src 'none'" in headers["content-security-policy"] and "script-src" not in headers["content-security-policy"]
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        assert status(method, ui_url)[0] == 405, method
    assert status("GET", ui_url, {"Host": "attacker.example"})[0] == 400  # DNS rebinding
    assert status("GET", ui_url.replace("127.0.0.1", "localhost"))[0] == 200


def test_a_taken_port_or_a_wrong_lake_is_one_clear_error_line(ui_lake, ui_url, tmp_path):
    port = ui_url.rsplit(":", 1)[1].strip("/")
    proc = subprocess.run([sys.executable, "-m", "lake", "ui", "--lake", ui_lake, "--port", port],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: --host 127.0.0.1 --port {port} is in use; pick another with --port (0 = any free port)"
    proc = subprocess.run([sys.executable, "-m", "lake", "ui", "--lake", str(tmp_path), "--port", "0"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: no Delta table `sessions` at {tmp_path}/sessions") and "\n" not in proc.stderr.strip()


def test_pages_follow_the_worker_while_it_writes(page, ui_url, ui_lake):
    """Runs last: it adds sessions to the shared lake, as a running worker would."""
    from tests.lake.conftest import session_events
    from tests.lake.ui.conftest import write

    page.goto(ui_url)
    before = page.locator("footer").inner_text()
    write(ui_lake, session_events("written-later", turns=1))
    page.goto(ui_url)
    assert page.locator("#matched").inner_text() == str(TOTAL + 1)
    assert page.locator("footer").inner_text().split("(")[0] != before.split("(")[0]  # new pinned versions
    page.goto(ui_url + "session?id=written-later")
    assert page.locator("#turns section.turn").count() == 1
