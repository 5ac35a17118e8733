"""The rooms import one way: storage imports neither side, the sides never import each other, and
storage.contract needs no database."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# room -> the top-level packages (or storage subpackages) it must not import
FORBIDDEN = {
    "storage": ("sweeper", "workers"),
    "storage/contract": ("sweeper", "workers", "sqlalchemy", "storage.rdb", "storage.lean", "storage.budget",
                         "storage.studies", "storage.epochs", "storage.retry", "storage.resilient"),
    "sweeper": ("workers",),
    "workers": ("sweeper",),
}


def imported(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it (lazy imports inside functions too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def violations(room: str, forbidden: tuple[str, ...]) -> list[str]:
    """'file: module' for each import of `room` that reaches into a forbidden room."""
    out = []
    for path in sorted((ROOT / room).rglob("*.py")):
        for name in sorted(imported(path)):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                out.append(f"{path.relative_to(ROOT)}: {name}")
    return out


@pytest.mark.parametrize("room", FORBIDDEN)
def test_imports_go_one_way(room):
    assert violations(room, FORBIDDEN[room]) == []


def test_the_check_sees_a_lazy_import(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    from workers.train import train\n    import sweeper.cli\n")
    assert imported(tmp_path / "m.py") >= {"workers.train", "workers.train.train", "sweeper.cli"}
