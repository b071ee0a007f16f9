"""The package layout in OVERVIEW.md ("Where things are") is the code's.

The map lists the sub-packages from the top down with who imports each; here
every import statement of the package (module level and inside functions) is
read and held against it: a sub-package imports only sub-packages listed below
it, the importers of each are exactly the map's, the root modules import no
sub-package, and every sub-package on disk is on the map and imports.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections import defaultdict

import pytest

from helpers import REPO

PACKAGE = REPO / "src" / "fairseq2_preference"
ROOT_MODULES = {"errors", "io", "offline"}
"""Root modules below every sub-package."""
ENTRY_POINTS = {"__main__", "extension"}


def layout_map() -> list[tuple[str, set[str]]]:
    """``(sub-package, importers)`` rows of the map, top to bottom."""
    text = (REPO / "OVERVIEW.md").read_text(encoding="utf-8")
    section = text.split("## Where things are", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(\w+)/` \|[^|]*\| (.*) \|$", section, flags=re.MULTILINE)
    return [(name, set(re.findall(r"`(\w+)`", importers))) for name, importers in rows]


def import_edges() -> dict[str, set[str]]:
    """Imported unit → the units that import it (a unit: a sub-package or root module)."""
    edges: dict[str, set[str]] = defaultdict(set)
    for file in PACKAGE.rglob("*.py"):
        source = file.relative_to(PACKAGE).with_suffix("").parts[0]
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module == "fairseq2_preference":
                names = [f"fairseq2_preference.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                if name.startswith("fairseq2_preference."):
                    target = name.split(".")[1]
                    if target != source:
                        edges[target].add(source)
    return edges


def subpackages() -> set[str]:
    return {p.parent.name for p in PACKAGE.glob("*/__init__.py")}


def test_every_subpackage_is_on_the_map_and_imports() -> None:
    mapped = [name for name, _ in layout_map()]
    assert len(mapped) == len(set(mapped))
    # cards/ and presets/ are data: they live inside models/ and config/.
    assert set(mapped) == subpackages()
    for name in mapped:
        importlib.import_module(f"fairseq2_preference.{name}")


def test_imports_only_go_down_and_the_map_names_every_importer() -> None:
    order = [name for name, _ in layout_map()]
    rank = {name: i for i, name in enumerate(order)}
    rank |= {name: len(order) for name in ROOT_MODULES}
    edges = import_edges()
    upward = [
        f"{importer} imports {target}"
        for target, importers in edges.items()
        for importer in importers
        if importer not in ENTRY_POINTS
        and not {importer, target} <= ROOT_MODULES
        and rank[importer] >= rank[target]
    ]
    assert not upward, "imports from a sub-package at or above the importer: " + "; ".join(upward)
    for name, importers in layout_map():
        assert importers == edges.get(name, set()), f"`{name}/`: the map's importers differ"


@pytest.mark.parametrize("module", sorted(ROOT_MODULES))
def test_root_modules_import_no_subpackage(module: str) -> None:
    edges = import_edges()
    reached = {target for target, importers in edges.items() if module in importers}
    assert reached <= ROOT_MODULES
