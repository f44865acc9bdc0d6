"""The layers of docs/architecture.md hold: every import goes down (or sideways within a layer)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "lr_lab"
# Lowest first. Modules of one layer may import each other (without cycles), never a higher one.
LAYERS = [
    {"errors", "interrupt", "atomic", "console", "version"},
    {"config"},
    {"analysis"},
    {"search"},
    {"training"},
    {"finder"},
    {"executors"},
    {"report"},
    {"experiment"},
    {"api"},
    {"study"},
    {"cli", "__init__"},
]
APART = {"examples"}  # user-style classes: they import lightning and torch only


def layer_of(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def imports() -> dict[str, set[str]]:
    """Each lr_lab module and the lr_lab modules it imports (at the top or inside a function)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module == "lr_lab":
                    found |= {f"lr_lab.{alias.name}" for alias in node.names}
                elif node.module.startswith("lr_lab."):
                    found.add(node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("lr_lab.")}
        out[module] = found
    return out


def test_every_import_goes_down_the_layers():
    upward = []
    for module, targets in imports().items():
        if module.split(".")[1:2] and module.split(".")[1] in APART:
            assert not targets, f"{module} imports the lab: {targets}"
            continue
        for target in targets:
            if layer_of(target) > layer_of(module):
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_the_import_graph_has_no_cycle():
    graph = imports()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            nxt = nxt if nxt in graph else nxt.rsplit(".", 1)[0]  # `from lr_lab.x import name`
            if state.get(nxt) == 1:
                raise AssertionError(" -> ".join([*path, node, nxt]))
            if nxt in graph and not state.get(nxt):
                visit(nxt, [*path, node])
        state[node] = 2

    for node in graph:
        if not state.get(node):
            visit(node, [])


def test_no_module_is_over_300_lines_and_the_top_is_small():
    long = {
        str(p.relative_to(PACKAGE)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 300
    }
    assert long == {}
    assert len(list(PACKAGE.glob("*.py"))) <= 20


def test_every_subpackage_says_what_it_owns():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, init.parent.name
