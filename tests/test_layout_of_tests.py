"""The tests' own layout: they mirror the product packages, and share helpers through conftest.py.

A helper two test directories need lives in their nearest common conftest.py; a test module never
imports from another test module (its tests would be collected twice, and moving one file breaks
the other), and a fixture is requested by name, never imported (pytest then sees two of it).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

from tests.conftest import REPO

TESTS = REPO / "tests"
PRODUCT = ("schemas", "streams", "lake", "trainer", "examples")
# Product packages tested one folder up, and why.
NOT_MIRRORED = {
    "schemas/jsonschema": "the generated JSON Schema files are checked in tests/schemas/test_events.py",
    "examples/crafter": "the one example app; tests/examples/test_crafter.py",
}
# Test folders that follow the data across stages instead of mirroring one package.
CROSS_STAGE = {"integration", "faults"}


def _test_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "__pycache__" not in p.parts)


def _module_of(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every import in a file, function bodies included."""
    package = _module_of(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_of(path)
    out = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([module] if module else []))
            out.append((node.lineno, module, [alias.name for alias in node.names]))
    return out


def test_no_test_module_imports_from_another_test_module():
    bad = []
    for path in _test_files():
        for line, module, names in _imports(path):
            if not module.startswith("tests"):
                continue
            leaf = module.rsplit(".", 1)[-1]
            if leaf.startswith("test_") or any(n.startswith("test_") for n in names):
                bad.append(f"{path.relative_to(REPO)}:{line} imports {module} {names or ''}".rstrip())
    assert not bad, "move the shared helpers into the nearest common conftest.py:\n" + "\n".join(bad)


def test_fixtures_are_requested_by_name_not_imported():
    from _pytest.fixtures import FixtureFunctionDefinition

    bad = []
    for path in _test_files():
        for line, module, names in _imports(path):
            if not (module.startswith("tests") and module.endswith("conftest")):
                continue
            source = importlib.import_module(module)
            bad += [f"{path.relative_to(REPO)}:{line} imports the fixture {module}.{n}" for n in names
                    if isinstance(getattr(source, n, None), FixtureFunctionDefinition)]
    assert not bad, "request fixtures as test arguments (conftest.py makes them visible):\n" + "\n".join(bad)


def _packages() -> list[str]:
    """Every product package folder, as a path relative to the repository ('streams/worker')."""
    found = []
    for top in PRODUCT:
        for init in sorted((REPO / top).rglob("__init__.py")):
            if "__pycache__" not in init.parts:
                found.append(init.parent.relative_to(REPO).as_posix())
    return found


def test_every_product_package_has_its_mirror_folder_under_tests():
    packages = _packages()
    assert {"streams/publisher", "streams/worker", "lake", "trainer"} <= set(packages)  # the walk found them
    missing = [p for p in packages if p not in NOT_MIRRORED and not (TESTS / p).is_dir()]
    assert not missing, f"no tests/<package> folder for {missing}; add one (with __init__.py) next to its tests"
    stale = [p for p in NOT_MIRRORED if p not in packages]
    assert not stale, f"NOT_MIRRORED names packages that no longer exist: {stale}"


def test_every_test_folder_mirrors_a_package_or_is_cross_stage():
    packages = set(_packages())
    folders = sorted({p.parent for p in TESTS.rglob("test_*.py") if "__pycache__" not in p.parts} - {TESTS})
    orphans = []
    for folder in folders:
        rel = folder.relative_to(TESTS).as_posix()
        if rel.split("/")[0] not in CROSS_STAGE and rel not in packages:
            orphans.append(rel)
    assert not orphans, f"tests/{orphans} mirror no product package; move them next to the code they test"
    no_init = [f.relative_to(REPO).as_posix() for f in folders if not (f / "__init__.py").is_file()]
    assert not no_init, f"{no_init} lack __init__.py (same-named test modules in two folders would clash)"


def test_every_worker_hooks_path_the_tests_name_loads():
    """The worker subprocess imports WORKER_HOOKS itself: a stale path would show only as a test timeout."""
    from streams.worker.hooks import load_hooks

    specs = {m for p in _test_files() for m in re.findall(r"\btests(?:\.\w+)+:\w+", p.read_text())}
    assert "tests.faults.hooks:KillAt" in specs
    for spec in sorted(specs):
        hooks = load_hooks(spec)
        assert all(callable(getattr(hooks, n)) for n in ("before_commit", "after_appends", "after_commit")), spec
