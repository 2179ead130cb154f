"""JSON Schema files generated from the models: events for task apps not written in Python, and
the snapshot manifest for trainers and tools that read snapshots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

__all__ = ["SCHEMA_DIR", "json_schemas", "write_json_schemas"]

SCHEMA_DIR = Path(__file__).parent


def json_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, one per event type, the union of all, and the snapshot manifest."""
    from schemas.events import EVENT_TYPES, Judgment, OutcomeReward, RolloutEvent, SessionEnd, SessionStart, Turn
    from schemas.manifest import FORMAT_VERSION, SnapshotManifest

    models = dict(zip(EVENT_TYPES, (SessionStart, Turn, SessionEnd, OutcomeReward, Judgment)))
    out = {f"{name}.v1.json": model.model_json_schema() for name, model in models.items()}
    union = TypeAdapter(RolloutEvent).json_schema()
    union["title"] = "RolloutEvent"
    out["rollout_event.v1.json"] = union
    out[f"snapshot_manifest.v{FORMAT_VERSION}.json"] = SnapshotManifest.model_json_schema()
    for name, schema in out.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://rollout-lake.dev/schemas/{name}"
    return out


def write_json_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema as pretty JSON; returns the paths written."""
    written = []
    for name, schema in json_schemas().items():
        path = Path(directory) / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
