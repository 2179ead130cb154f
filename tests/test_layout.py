"""Import rules between the packages, and the extra that installs each: one table, here and in
docs/ARCHITECTURE.md ("Packages"). Every import counts, function-local and TYPE_CHECKING ones too;
an import inside `try: ... except ImportError` is optional and may name anything."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

from schemas.extras import BASE, EXTRAS, INCLUDES

ROOT = Path(__file__).resolve().parents[1]
OURS = ("schemas", "streams", "lake", "trainer", "examples")


@dataclass(frozen=True)
class Rule:
    ours: tuple[str, ...]  # packages of ours it may import besides itself ("*": any)
    extra: str | None  # the extra that installs its third-party imports (None: the base install)


RULES: dict[str, Rule] = {
    "schemas": Rule((), None),
    "streams": Rule(("streams.publisher", "schemas"), None),  # streams/__init__.py: the SDK's names
    "streams.publisher": Rule(("schemas",), None),
    "streams.importers": Rule(("streams.publisher", "schemas"), None),
    "streams.devtools": Rule(("schemas",), "worker"),
    "streams.worker": Rule(("lake", "schemas"), "worker"),
    "streams.__main__": Rule(("streams.publisher", "streams.importers", "streams.devtools", "schemas"), None),
    "lake": Rule(("schemas",), "lake"),
    "trainer": Rule(("schemas",), "train"),
    "examples": Rule(("*",), "all"),
}


def _modules() -> dict[str, Path]:
    found = {}
    for top in OURS:
        for path in sorted((ROOT / top).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


KNOWN = set(_modules())


def _unit(module: str) -> str | None:
    """The RULES key a module falls under: the longest one that is it or a package above it."""
    keys = [k for k in RULES if module == k or module.startswith(k + ".")]
    best = max(keys, key=len, default=None)
    if best == "streams" and module != "streams":
        return None  # a new streams subpackage needs its own row
    return best


def _within(module: str, packages: tuple[str, ...]) -> bool:
    return any(p == "*" or module == p or module.startswith(p + ".") for p in packages)


def _optional(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Inside a `try` whose handlers catch ImportError or ModuleNotFoundError."""
    while node in parents:
        node, child = parents[node], node
        if isinstance(node, ast.Try) and child in node.body:
            caught = {ast.unparse(h.type) for h in node.handlers if h.type is not None}
            if any(re.search(r"\b(ImportError|ModuleNotFoundError)\b", c) for c in caught):
                return True
    return False


def _imports(module: str, path: Path) -> list[tuple[int, str, bool]]:
    """(line, absolute module, optional) of every import, plus `_LAZY` tables and import_module("...")."""
    tree = ast.parse(path.read_text(), filename=str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name, _optional(node, parents)) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            name = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([name] if name else []))
            # `from streams import publisher` imports the submodule streams.publisher.
            subs = [f"{name}.{a.name}" for a in node.names if f"{name}.{a.name}" in KNOWN]
            out += [(node.lineno, target, _optional(node, parents)) for target in subs or [name]]
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_LAZY" for t in node.targets):
            out += [(node.lineno, v.value, False) for v in ast.walk(node.value)
                    if isinstance(v, ast.Constant) and isinstance(v.value, str) and v.value.split(".")[0] in OURS]
        elif (isinstance(node, ast.Call) and ast.unparse(node.func).endswith("import_module") and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            out.append((node.lineno, node.args[0].value, _optional(node, parents)))
    return out


def _third_party_allowed(extra: str | None) -> set[str]:
    allowed = set(BASE)
    pending = list(EXTRAS) if extra == "all" else [extra] if extra else []
    while pending:
        name = pending.pop()
        allowed |= set(EXTRAS[name])
        pending += INCLUDES.get(name, ())
    return allowed


def test_every_module_has_a_rule():
    orphans = [m for m in _modules() if _unit(m) is None]
    assert not orphans, f"{orphans} fall under no row of RULES; add one here and in docs/ARCHITECTURE.md"


def test_imports_follow_the_package_rules():
    bad = []
    for module, path in _modules().items():
        unit = _unit(module)
        rule = RULES[unit]
        own = () if unit in ("streams", "streams.__main__") else (unit,)  # `streams` alone would allow all of it
        allowed_third = _third_party_allowed(rule.extra)
        for line, target, optional in _imports(module, path):
            top = target.split(".")[0]
            where = f"{path.relative_to(ROOT)}:{line} imports {target}"
            if top in OURS:
                if not _within(target, own + rule.ours):
                    bad.append(f"{where}: {unit} may import only {', '.join(own + rule.ours)}")
            elif top and top not in sys.stdlib_module_names and top != "__future__" and not optional:
                if top not in allowed_third:
                    extra = f"the {rule.extra} extra" if rule.extra else "the base install"
                    bad.append(f"{where}: not in {extra} ({unit}); declare it there (pyproject.toml and "
                               "schemas/extras.py) or import it from a package whose extra has it")
    assert not bad, "import rules broken:\n" + "\n".join(bad)


def test_the_sdk_imports_nothing_heavy():
    """The rule the fresh-venv test proves by installing; stated here by name so it reads plainly."""
    heavy = {"faust", "deltalake", "duckdb", "torch", "pyarrow", "numpy", "transformers", "trl", "lake", "trainer"}
    hits = [f"{path.relative_to(ROOT)}:{line} imports {target}"
            for module, path in _modules().items() if _unit(module) in ("streams", "streams.publisher", "schemas")
            for line, target, optional in _imports(module, path)
            if target.split(".")[0] in heavy or target.startswith("streams.worker")]
    assert not hits, hits


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> dict[str, set[str]]:
    """extra ('' for the base) -> the distributions pyproject.toml names in it (other extras it includes apart)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    return {extra: {_normalise(re.match(r"[A-Za-z0-9._-]+", req).group(0)) for req in reqs} for extra, reqs in groups.items()}


def test_extras_table_matches_pyproject():
    declared = _declared()
    assert set(declared) == {"", *EXTRAS, "all", "dev"}, sorted(declared)
    assert declared["all"] == {"rollout-lake"}, "the all extra names the others: rollout-lake[lake,worker,...]"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (everything,) = project["optional-dependencies"]["all"]
    assert set(re.fullmatch(r"rollout-lake\[(.*)\]", everything).group(1).split(",")) == set(EXTRAS), everything
    for extra, included in INCLUDES.items():
        assert f"rollout-lake[{','.join(included)}]" in project["optional-dependencies"][extra], extra
    dists = importlib.metadata.packages_distributions()
    for extra, modules in {"": BASE, **EXTRAS}.items():
        names = declared[extra] - {"rollout-lake"}
        provided = {_normalise(d) for m in modules for d in dists.get(m, ())}
        label = extra or "base"
        assert provided == names, (f"{label}: pyproject.toml names {sorted(names)}, schemas/extras.py's modules "
                                   f"come from {sorted(provided)}")


def _architecture_rows() -> dict[str, tuple[tuple[str, ...], str]]:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    start = text.index("| package | owns | may import | extra |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        package, _owns, may, extra = (cell.strip() for cell in re.split(r"(?<!\\)\|", line.strip().strip("|")))
        key = re.search(r"`([\w.]+)`", package).group(1)
        ours = ("*",) if may.startswith("anything") else tuple(re.findall(r"`([\w.]+)`", may))
        rows[key] = (ours, extra.split()[0])
    return rows


def test_architecture_table_states_the_same_rules():
    documented = _architecture_rows()
    expected = {k: (r.ours, r.extra or "base") for k, r in RULES.items()}
    assert documented == expected, "docs/ARCHITECTURE.md's package table and RULES differ"
