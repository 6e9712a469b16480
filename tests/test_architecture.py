"""The layers of docs/architecture.md, checked on the source (stdlib ``ast``, nothing imported).

Top may import lower, never the other way; siblings on one row never import each other::

    bot                                  (may also import simulators)
    scheduler | handlers | importers
    services
    models
    core
    domain
    simulators                           (import only domain and core; only bot imports them)

Besides the order: no cycle between packages, no cycle between the modules of one package (their
top-level imports), no function-level import of our own modules unless its line says why
(``# lazy: <reason>``), ``domain/`` imports only the standard library and itself, ``services/``
never imports telegram, aiohttp, bot, handlers or scheduler.

Each violation has a stable key (no line numbers), and its message names file:line.
"""

from __future__ import annotations

import ast
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Violations outside the wiring: being removed by the structural step; must end empty (issue 17).
# A key that no longer occurs fails test_known_violations_still_occur: delete it from here then.
KNOWN_VIOLATIONS: set[str] = {}

PACKAGES = ("domain", "core", "models", "services", "scheduler", "handlers", "importers", "bot", "simulators")
#: Height of each layer; a package imports only packages strictly lower (simulators: see layer_error).
RANK = {"domain": 0, "core": 1, "models": 2, "services": 3, "scheduler": 4, "handlers": 4, "importers": 4, "bot": 5}
SERVICES_NEVER = ("telegram", "aiohttp", "bot", "handlers", "scheduler")
LAZY_COMMENT = re.compile(r"#\s*lazy:\s*\S")


@dataclass(frozen=True)
class Import:
    path: str  # "services/surveys.py"
    line: int
    module: str  # the importing module: "services.surveys"
    target: str  # what it names: "scheduler", "services.outbox", "aiohttp.web"
    lazy: bool  # inside a function
    typing_only: bool  # under ``if TYPE_CHECKING:``
    commented: bool  # a "# lazy: <reason>" on one of its lines

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    @property
    def src(self) -> str:
        return self.module.split(".")[0]

    @property
    def dst(self) -> str:
        return self.target.split(".")[0]


def source_files(root: Path) -> Iterator[Path]:
    for name in PACKAGES:
        if (root / f"{name}.py").is_file():
            yield root / f"{name}.py"
        if (root / name).is_dir():
            yield from sorted((root / name).rglob("*.py"))


def module_name(rel: str) -> str:
    return rel[: -len(".py")].replace("/", ".").removesuffix(".__init__")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _visit(node: ast.AST, lazy: bool = False, typing_only: bool = False) -> Iterator[tuple[ast.stmt, bool, bool]]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node, lazy, typing_only
        return
    if isinstance(node, ast.If) and _is_type_checking(node.test):
        for stmt in node.body:
            yield from _visit(stmt, lazy, True)
        for stmt in node.orelse:
            yield from _visit(stmt, lazy, typing_only)
        return
    lazy = lazy or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
    for child in ast.iter_child_nodes(node):
        yield from _visit(child, lazy, typing_only)


def scan(root: Path) -> list[Import]:
    """Every import statement of the project's packages under ``root``, one per name it imports."""
    files = {p.relative_to(root).as_posix(): p for p in source_files(root)}
    modules = {module_name(rel) for rel in files}
    found = []
    for rel, path in files.items():
        module = module_name(rel)
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        for node, lazy, typing_only in _visit(ast.parse(source, filename=rel)):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:  # relative: from the importing module's package
                    parts = module.split(".") if rel.endswith("__init__.py") else module.split(".")[:-1]
                    parts = parts[: len(parts) - (node.level - 1)]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                # "from pkg import mod" names the module pkg.mod when there is one, else pkg itself
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            commented = any(LAZY_COMMENT.search(lines[i - 1]) for i in range(node.lineno, node.end_lineno + 1))
            for target in dict.fromkeys(targets):
                found.append(Import(rel, node.lineno, module, target, lazy, typing_only, commented))
    return found


def layer_error(src: str, dst: str) -> str | None:
    """Why package ``src`` may not import package ``dst``, or None if it may."""
    if src == dst:
        return None
    if dst == "bot":
        return "nothing imports bot: it is the wiring at the top"
    if src == "simulators":
        return None if dst in ("domain", "core") else "simulators import only domain and core"
    if dst == "simulators":
        return None if src == "bot" else "only bot (the demo) imports simulators"
    if RANK[dst] == RANK[src]:
        return f"{src} and {dst} are siblings on one row: neither imports the other"
    if RANK[dst] > RANK[src]:
        return f"{src} is below {dst} in the layers: it never imports it"
    return None


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the components with more than one node (each one a cycle or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def _cycle(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One cycle through the component's first node (breadth first, so a shortest one)."""
    start, members = component[0], set(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v] & members):
            if w == start:
                return paths[v] + [start]
            if w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    raise AssertionError("a strongly connected component always has a cycle")


def _cycles(kind: str, imports: list[Import], node) -> dict[str, list[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    first: dict[tuple[str, str], Import] = {}
    for imp in imports:
        a, b = node(imp.module), node(imp.target)
        if a != b:
            graph[a].add(b)
            first.setdefault((a, b), imp)
    found = {}
    for component in _strongly_connected(graph):
        path = _cycle(graph, component)
        steps = [f"{a} -> {b} ({first[a, b].where})" for a, b in zip(path, path[1:], strict=False)]
        found[f"{kind} cycle: {', '.join(component)}"] = [f"{kind} cycle {' -> '.join(path)}: " + "; ".join(steps)]
    return found


# --- the checks: each returns {stable key: [file:line messages]} -------------------------------------


def layer_violations(imports: list[Import]) -> dict[str, list[str]]:
    found = defaultdict(list)
    for imp in imports:
        why = []
        if imp.dst in PACKAGES and (error := layer_error(imp.src, imp.dst)):
            why.append(error)
        if imp.src == "services" and imp.dst in SERVICES_NEVER:
            why.append(f"services never import {', '.join(SERVICES_NEVER)}")
        if imp.src == "domain" and imp.dst not in sys.stdlib_module_names and imp.dst not in PACKAGES:
            why.append("domain imports only the standard library and domain")
        if why:
            found[f"{imp.path} -> {imp.dst}"].append(f"{imp.where}: imports {imp.target}: {'; '.join(why)}")
    return dict(found)


def package_cycles(imports: list[Import]) -> dict[str, list[str]]:
    ours = [imp for imp in imports if imp.dst in PACKAGES]
    return _cycles("package", ours, lambda name: name.split(".")[0])


def module_cycles(imports: list[Import]) -> dict[str, list[str]]:
    """Cycles among the modules of one package, through the imports that run at import time."""
    modules = {imp.module for imp in imports}
    inside = [
        imp for imp in imports if not imp.lazy and not imp.typing_only and imp.src == imp.dst and imp.target in modules
    ]
    return _cycles("module", inside, lambda name: name)


def lazy_imports(imports: list[Import]) -> dict[str, list[str]]:
    found = defaultdict(list)
    for imp in imports:
        if imp.lazy and imp.dst in PACKAGES and not imp.commented:
            found[f"{imp.path}: lazy import of {imp.target}"].append(
                f"{imp.where}: function-level import of {imp.target}: move it to the top of the module, "
                "or say on its line why it must be lazy (# lazy: <reason>)"
            )
    return dict(found)


CHECKS = {
    "layers": layer_violations,
    "package cycles": package_cycles,
    "module cycles": module_cycles,
    "lazy imports": lazy_imports,
}


@cache
def project_imports() -> list[Import]:
    return scan(ROOT)


@pytest.mark.parametrize("check", CHECKS)
def test_the_layers_hold(check):
    found = CHECKS[check](project_imports())
    new = {key: found[key] for key in sorted(found.keys() - KNOWN_VIOLATIONS)}
    assert not new, f"{check} (docs/architecture.md says where the code belongs):\n" + "\n".join(
        f"  {key}\n" + "\n".join(f"      {line}" for line in lines) for key, lines in new.items()
    )


def _occurs(key: str, found: set[str]) -> bool:
    """Whether a known violation is still there; a known cycle is, while a cycle found holds all its members."""
    if key in found or " cycle: " not in key:
        return key in found
    kind, members = key.split(": ", 1)
    return any(
        other.startswith(kind + ": ") and set(members.split(", ")) <= set(other.split(": ", 1)[1].split(", "))
        for other in found
    )


def test_known_violations_still_occur():
    found = set().union(*(check(project_imports()) for check in CHECKS.values()))
    gone = sorted(key for key in KNOWN_VIOLATIONS if not _occurs(key, found))
    assert not gone, "fixed, so delete from KNOWN_VIOLATIONS in tests/test_architecture.py:\n" + "\n".join(
        f"  {key}" for key in gone
    )


def test_the_checks_catch_what_they_guard(tmp_path):
    """The checker itself, on a small tree holding one violation of each kind."""
    files = {
        "domain/__init__.py": "",
        "domain/a.py": "import json\nimport requests\nfrom domain import b\n",
        "domain/b.py": "from . import a\n",
        "models/__init__.py": "",
        "models/m.py": "from services import s\n",
        "services/__init__.py": "",
        "services/s.py": (
            "import aiohttp\n\n\ndef f():\n    from models import m\n\n\n"
            "def g():\n    from models import m  # lazy: a reason\n"
        ),
        "simulators/__init__.py": "",
        "simulators/x.py": "from core import c\nfrom bot import y\n",
        "core/__init__.py": "",
        "core/c.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from core import d\n",
        "core/d.py": "from core import c\n",
        "bot/__init__.py": "",
        "bot/y.py": "import simulators.x\nimport scheduler\n",
        "scheduler.py": "from services import s\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    imports = scan(tmp_path)
    found = {name: check(imports) for name, check in CHECKS.items()}
    assert set(found["layers"]) == {
        "domain/a.py -> requests",
        "models/m.py -> services",
        "services/s.py -> aiohttp",
        "simulators/x.py -> bot",
    }
    assert found["layers"]["models/m.py -> services"] == [
        "models/m.py:1: imports services.s: models is below services in the layers: it never imports it"
    ]
    assert set(found["package cycles"]) == {"package cycle: models, services", "package cycle: bot, simulators"}
    assert set(found["module cycles"]) == {"module cycle: domain.a, domain.b"}  # not core.c <-> core.d: typing only
    assert found["module cycles"]["module cycle: domain.a, domain.b"] == [
        "module cycle domain.a -> domain.b -> domain.a: domain.a -> domain.b (domain/a.py:3); "
        "domain.b -> domain.a (domain/b.py:1)"
    ]
    assert set(found["lazy imports"]) == {"services/s.py: lazy import of models.m"}
    assert found["lazy imports"]["services/s.py: lazy import of models.m"][0].startswith("services/s.py:5: ")
