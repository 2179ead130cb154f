"""`python -m lake ...`: see lake/cli.py."""

import sys

from lake.cli import main

if __name__ == "__main__":
    sys.exit(main())
