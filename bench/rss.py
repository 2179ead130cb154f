"""Run a module as __main__ and report its own peak RSS and CPU time: `python -m bench.rss OUT.json MODULE ARGS...`.

Linux keeps ru_maxrss across execve, so a child forked from a big parent reports the parent's
size (RUSAGE_SELF and RUSAGE_CHILDREN alike): both bench rows once showed the same figure. VmHWM
in /proc/self/status belongs to the process's own address space, which exec replaces: it is the
peak of this program alone. ru_maxrss is the fallback where /proc is missing.
"""

from __future__ import annotations

import atexit
import json
import resource
import runpy
import sys


def peak_rss_mib() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    out, module, *args = sys.argv[1:]

    def report() -> None:
        with open(out, "w") as fh:
            usage = resource.getrusage(resource.RUSAGE_SELF)  # all threads: DuckDB's too
            json.dump({"peak_rss_mib": peak_rss_mib(), "cpu_s": usage.ru_utime + usage.ru_stime}, fh)

    atexit.register(report)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
