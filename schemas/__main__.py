"""`python -m schemas`: regenerate the committed JSON Schema files."""

from __future__ import annotations

import sys

from schemas.jsonschema import write_json_schemas


def main(argv: list[str] | None = None) -> int:
    for path in write_json_schemas():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
