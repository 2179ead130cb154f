"""One error convention for the project's command lines (`python -m streams|lake|trainer`).

Exit status: 0 done, 1 failed, 2 bad input (argparse usage errors included), 130 interrupted,
141 when the reader of our output went away (`lake sql ... | head`), as a tool killed by SIGPIPE.
Bad input is a RolloutLakeError that is also a ValueError; a class may state its own status
with an `exit_code` attribute (an empty snapshot is a ValueError to Python callers but a
result, not a typo, to a shell script: exit 1). Errors are one line on stderr; --debug shows
the traceback instead.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence

from schemas.exceptions import RolloutLakeError

__all__ = ["BAD_INPUT", "BROKEN_PIPE", "EXIT_STATUS", "FAILED", "INTERRUPTED", "exit_code_for", "run_cli"]

FAILED = 1
BAD_INPUT = 2
INTERRUPTED = 130
BROKEN_PIPE = 141  # 128 + SIGPIPE

# For each CLI's --help epilog.
EXIT_STATUS = "exit status: 0 done, 1 failed, 2 bad input or usage, 130 interrupted; --debug shows tracebacks"


def exit_code_for(exc: BaseException) -> int:
    """The exit status a CLI returns for `exc`."""
    code = getattr(exc, "exit_code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return code
    return BAD_INPUT if isinstance(exc, RolloutLakeError) and isinstance(exc, ValueError) else FAILED


def run_cli(main: Callable[[list[str]], int], argv: Sequence[str] | None = None, *, debug: bool | None = None) -> int:
    """Run `main(argv)` and turn what it raises into one stderr line and an exit status.

    `debug` (default: a bare `--debug` among the arguments) re-raises instead. argparse's own
    SystemExit (exit 2 after a usage error, 0 after --help) passes through untouched.
    """
    args = sys.argv[1:] if argv is None else list(argv)
    show_traceback = ("--debug" in args) if debug is None else debug
    try:
        return main(args)
    except KeyboardInterrupt:
        if show_traceback:
            raise
        print("interrupted", file=sys.stderr)
        return INTERRUPTED
    except BrokenPipeError:
        # Nothing left to tell: whoever read stdout stopped (`| head`). Point stdout at /dev/null so
        # the interpreter's final flush does not fail again with a second message.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return BROKEN_PIPE
    except Exception as exc:
        if show_traceback:
            raise
        if isinstance(exc, RolloutLakeError):
            print(f"error: {exc}", file=sys.stderr)
        else:
            first = next((line for line in str(exc).splitlines() if line.strip()), "")
            print(f"error: unexpected {type(exc).__name__}{': ' + first if first else ''} "
                  "(run with --debug for the traceback)", file=sys.stderr)
        return exit_code_for(exc)
