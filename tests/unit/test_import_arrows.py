"""The dependency arrows point one way: each layer imports only what sits below it.

Read from the source with ``ast`` (imports inside functions and under TYPE_CHECKING count too),
so a new upward import fails here before it becomes a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import champipy

PACKAGE = Path(champipy.__file__).parent

# layer -> the champipy layers it must never import
FORBIDDEN = {
    "store": {"services", "api", "web", "jobs", "registry", "model", "cli", "container", "app_deps"},
    "model": {"services", "api", "web", "store", "jobs", "cli", "container", "app_deps"},
    "registry": {"model", "services", "api", "web", "store", "jobs", "cli", "container"},
    "services": {"api", "web", "cli", "container", "app_deps"},
    "jobs": {"api", "web", "cli", "container", "app_deps"},
    "web": {"api", "cli"},
    "api": {"cli"},
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def imported_modules(path: Path) -> set[str]:
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}  # "from . import registry"
    return {name for name in found if name.startswith("champipy.")}


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_points_up(path: Path):
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    forbidden = FORBIDDEN.get(layer_of(module), set())
    upward = sorted(name for name in imported_modules(path) if layer_of(name) in forbidden)
    assert upward == [], f"{module} imports {upward}"


def test_the_check_sees_relative_imports():
    # services/predict.py imports ..store.base: resolved, it is champipy.store.base
    assert "champipy.store.base" in imported_modules(PACKAGE / "services" / "predict.py")
