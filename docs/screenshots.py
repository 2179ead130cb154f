"""The README's screenshot of `python -m lake ui`, taken from a real lake in headless Chromium.

    python docs/screenshots.py [--lake demo-out/lake] [--out docs/img/lake-ui-session.png]

Starts `python -m lake ui --port 0` on the lake (by default `make demo`'s), opens the session page of
the episode with the most achievements and saves the top of it as PNG. Needs /usr/bin/chromium
(`apt-get install chromium`) and playwright (the dev extra).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

REPO = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lake", default=str(REPO / "demo-out" / "lake"))
    p.add_argument("--out", default=str(REPO / "docs" / "img" / "lake-ui-session.png"))
    p.add_argument("--height", type=int, default=1150)
    args = p.parse_args(argv)

    from lake.reader import connect
    from playwright.sync_api import sync_playwright

    with connect(args.lake) as lake:
        session_id = lake.query("""SELECT session_id FROM sessions WHERE achievements_count > 0
                                   ORDER BY achievements_count DESC, session_id LIMIT 1""").fetchone()[0]
    proc = subprocess.Popen([sys.executable, "-m", "lake", "ui", "--lake", args.lake, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        m = re.search(r"(http://\S+/)", proc.stdout.readline())  # type: ignore[union-attr]
        assert m, "lake ui printed no URL"
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": args.height})
            page.goto(m.group(1) + "session?id=" + quote(session_id))
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=args.out)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"wrote {args.out} (session {session_id})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
