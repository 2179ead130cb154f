"""Run a module as __main__ and report its own peak RSS: `python -m bench.rss OUT.json MODULE ARGS...`.

ru_maxrss of a child seen from the parent (wait4, RUSAGE_CHILDREN) can carry the parent's size
from before exec; RUSAGE_SELF inside the process is its own peak.
"""

from __future__ import annotations

import atexit
import json
import resource
import runpy
import sys


def main() -> None:
    out, module, *args = sys.argv[1:]

    def report() -> None:
        with open(out, "w") as fh:
            json.dump({"peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}, fh)

    atexit.register(report)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
