"""What decides whether a job reruns: canonical rule params and the code each stage runs.

Snakemake records each param as ``repr(value)`` and reruns a job whose reprs changed, so a dict
whose keys come in another order (a config written back by ``yaml.safe_dump``) looks changed:
:func:`canonical` sorts every mapping's keys. A rule's ``code`` param is :func:`stage_code_hash`:
the stage function in ``cli.py`` (with the ``cli`` helpers it calls) and every ``neurofit`` module
it imports, followed import by import through the package. The walk reads source with ``ast`` and
imports nothing, so the Snakefile runs it at DAG-build time without torch.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

PACKAGE = "neurofit"
PACKAGE_DIR = Path(__file__).parent
# Every rule runs its stage through this entry, so a change to it reruns every rule.
ENTRY = "run_from_snakemake"


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (recursively) and tuples as lists, so that equal
    settings have equal reprs whatever order the config wrote them in. List order is kept: it means
    something (layers, regions, metrics)."""
    if isinstance(value, Mapping):
        return {str(k): canonical(value[k]) for k in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    return value


def _module_file(module: str, root: Path) -> Path | None:
    """The source file of ``neurofit.<...>`` under ``root`` (a package's ``__init__.py``), if any."""
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = root.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _with_parents(module: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a/__init__``, ``a.b/__init__`` and ``a.b.c``."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


# The fields of a statement that hold statements (expressions hold none, and so no import).
_STATEMENT_LISTS = ("body", "orelse", "finalbody", "handlers", "cases")


def _statements(node: ast.AST) -> list[ast.AST]:
    """``node`` and every statement nested in it, in no particular order: an import is a statement, so
    this finds every import that :func:`ast.walk` would, visiting about a tenth of the nodes (the walks of
    every rule's modules were most of the Snakefile's start-up)."""
    found, todo = [], [node]
    while todo:
        item = todo.pop()
        found.append(item)
        for field in _STATEMENT_LISTS:
            todo.extend(getattr(item, field, ()))
    return found


def _imported(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """Modules named by the import statements anywhere under ``node`` (function-level ones included)."""
    found: list[str] = []
    for item in _statements(node):
        if isinstance(item, ast.Import):
            found += [alias.name for alias in item.names]
        elif isinstance(item, ast.ImportFrom):
            if item.level:  # relative: from the module's package upwards
                package = module.split(".") if is_package else module.split(".")[:-1]
                package = package[: len(package) - (item.level - 1)]
                base = ".".join(package + ([item.module] if item.module else []))
            else:
                base = item.module or ""
            found.append(base)
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when there is one
            found += [f"{base}.{alias.name}" for alias in item.names]
    return [name for name in found if name.split(".")[0] == PACKAGE]


def _parse(path: Path) -> ast.Module:
    return _parse_source(path.read_text())


@lru_cache(maxsize=256)
def _parse_source(source: str) -> ast.Module:
    """Parsed once per distinct source text (the rules ask for the same modules many times)."""
    return ast.parse(source)


@lru_cache(maxsize=512)
def _module_imports(source: str, module: str, is_package: bool) -> tuple[str, ...]:
    """:func:`_imported` of a module's whole source, once per distinct source (every rule's hash walks
    the same modules: uncached, the walks cost each Snakemake start a second)."""
    return tuple(_imported(_parse_source(source), module, is_package))


@lru_cache(maxsize=8)
def _source_lines(source: str) -> list[str]:
    """``source`` split as :func:`ast.get_source_segment` splits it (at \\r\\n, \\r, \\n; endings kept)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", source)


def _source_segment(source: str, node: ast.stmt) -> str:
    """``ast.get_source_segment(source, node)``, splitting ``source`` once rather than per call."""
    lines = _source_lines(source)
    first, last = node.lineno - 1, node.end_lineno - 1  # type: ignore[operator]
    if first == last:
        return lines[first].encode()[node.col_offset:node.end_col_offset].decode()
    return "".join([lines[first].encode()[node.col_offset:].decode(), *lines[first + 1:last],
                    lines[last].encode()[:node.end_col_offset].decode()])


def module_closure(modules: tuple[str, ...], root: Path = PACKAGE_DIR) -> dict[str, Path]:
    """Every ``neurofit`` module that importing ``modules`` can run (their parents and everything
    they import, at module or function level, transitively): ``{module name: source file}``."""
    seen: dict[str, Path] = {}
    todo = [parent for name in modules for parent in _with_parents(name)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _module_file(name, root)
        if path is None:  # a name imported from a module (a function, a class), not a module
            continue
        seen[name] = path
        todo += [parent for found in _module_imports(path.read_text(), name, path.name == "__init__.py")
                 for parent in _with_parents(found)]
    return seen


def _top_level_defs(tree: ast.Module) -> dict[str, ast.stmt]:
    defs: dict[str, ast.stmt] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            defs[node.name] = node
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defs.update({t.id: node for t in targets if isinstance(t, ast.Name)})
    return defs


def stage_parts(stage: str, root: Path = PACKAGE_DIR) -> tuple[list[str], list[str]]:
    """What a stage runs: (the top-level definitions of ``cli.py`` it uses, from ``stage_<stage>``
    and :data:`ENTRY` through the helpers they call; the ``neurofit`` modules they import)."""
    tree = _parse(root / "cli.py")
    defs = _top_level_defs(tree)
    if f"stage_{stage}" not in defs:
        known = sorted(name[len("stage_"):] for name in defs if name.startswith("stage_"))
        raise KeyError(f"cli.py has no stage_{stage}; stages: {known}")
    used: list[str] = []
    todo = [f"stage_{stage}", ENTRY]
    while todo:
        name = todo.pop()
        if name in used or name not in defs:
            continue
        used.append(name)
        todo += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name) and n.id in defs]
    # module-level imports of cli.py run for every stage
    imports = [name for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)
               for name in _imported(node, f"{PACKAGE}.cli", False)]
    imports += [name for fn in used for name in _imported(defs[fn], f"{PACKAGE}.cli", False)]
    return sorted(used), sorted(set(imports))


def stage_params(stage: str) -> dict[str, str]:
    """A rule's two fixed params: the ``stage`` its script runs and that stage's ``code`` hash (a changed
    hash reruns the rule's jobs: Snakemake compares params)."""
    return {"stage": stage, "code": stage_code_hash(stage)}


def stage_code_hash(stage: str, root: Path = PACKAGE_DIR) -> str:
    """12 hex digits that change when any code the stage runs changes: its definitions in ``cli.py``
    and every ``neurofit`` module they import (so a rule's ``code`` param reruns it exactly then)."""
    cli_defs, imports = stage_parts(stage, root)
    cli_source = (root / "cli.py").read_text()
    defs = _top_level_defs(_parse(root / "cli.py"))
    digest = hashlib.sha256()
    for name in cli_defs:
        digest.update(f"cli.{name}\0{_source_segment(cli_source, defs[name])}\0".encode())
    for name, path in sorted(module_closure(tuple(imports), root).items()):
        digest.update(f"{name}\0".encode() + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]
