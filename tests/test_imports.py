"""The import graph of the package: no circle among the imports that run when a module is loaded.

A circle works by accident (whichever module Python happens to load first) and forces imports into
function bodies; the house puts the project's own imports at the top of each module and
keeps heavy optional packages (vLLM, peft, pyarrow) lazy where they are used.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# the installed package's name of each source folder (pyproject's package-dir)
ROOTS = {"pairgrpo_rllib": "pairgrpo_rllib", "algorithms": "pairgrpo_rllib.algorithms", "envs": "pairgrpo_rllib.envs"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, package in ROOTS.items():
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _load_time_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules that ``path`` imports at module level (not inside functions, classes'
    methods or ``if TYPE_CHECKING:``)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(stmts):
        for node in stmts:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                for block in ("body", "orelse", "finalbody", "handlers"):
                    for sub in getattr(node, block, []):
                        visit(sub.body if isinstance(sub, ast.ExceptHandler) else [sub])
            elif isinstance(node, ast.ClassDef):
                visit([n for n in node.body if not isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)])

    visit(tree.body)
    return {m for m in found if m in modules}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        deps = set()
        for m in _load_time_imports(path, modules):
            deps.add(m)
            # importing a.b.c loads the packages a.b and a first
            parts = m.split(".")
            deps.update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules)
        deps.discard(name)
        graph[name] = deps
    return graph


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            # a package's __init__ importing its own submodules is not a circle back to it
            if node.startswith(dep + "."):
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep) :] + [dep]
            if state.get(dep) is None:
                found = dfs(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = dfs(node)
            if found:
                return found
    return None


def test_the_finder_finds_a_circle():
    assert _circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _circle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_circle_among_load_time_imports():
    graph = _graph()
    assert len(graph) > 60  # the walk saw the whole package
    assert _circle(graph) is None, " -> ".join(_circle(graph))
