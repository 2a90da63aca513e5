"""The issuer's layout keeps its arrows: every import points down a layer, and none runs in a circle (DESIGN §6).

Layers, from the bottom: the foundation (errors and their catalogue, settings, private files, the audit hash
chain, signing times); ``storage``; ``keys``; ``lists``; the domain (the service and what it uses); the HTTP
edge; the command line. A module may import its own layer and the ones below. No product module imports the
``testing`` harnesses.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

FOUNDATION = {"issuer.errors", "issuer.settings", "issuer.files", "issuer.audit_chain", "issuer.signing_times"}
DOMAIN = {
    "issuer.service",
    "issuer.api_keys",
    "issuer.mint_meter",
    "issuer.paper_codes",
    "issuer.qr_images",
    "issuer.status_import",
    "issuer.signing_health",
    "issuer.opening",
    "issuer.tracing",
    "issuer.backup",
}
SUBPACKAGE_LAYER = {"storage": 1, "keys": 2, "lists": 3, "http": 5, "cli": 6}
PACKAGE_API = {"issuer", "issuer.__main__"}  # the package's front door may name any layer


def layer(module: str) -> int:
    """The layer of an issuer module. Raises: AssertionError for a module no layer claims (a new one must)."""
    if module in FOUNDATION:
        return 0
    if module in DOMAIN:
        return 4
    parts = module.split(".")
    assert len(parts) >= 2 and parts[1] in SUBPACKAGE_LAYER, f"{module} belongs to no layer: name its layer here"
    return SUBPACKAGE_LAYER[parts[1]]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PROJECT_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import; the issuer spells its imports in full"
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def issuer_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in (PROJECT_ROOT / "issuer").rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in files and m != name} for name, path in files.items()}


def test_every_issuer_import_points_down_a_layer() -> None:
    upward = [
        f"{module} (layer {layer(module)}) imports {target} (layer {layer(target)})"
        for module, targets in issuer_graph().items()
        if module not in PACKAGE_API
        for target in targets
        if target not in PACKAGE_API and layer(target) > layer(module)
    ]
    assert upward == []


def test_storage_imports_only_the_foundation_and_itself() -> None:
    graph = issuer_graph()
    bad = {
        m: sorted(t for t in ts if layer(t) not in (0, 1)) for m, ts in graph.items() if m.startswith("issuer.storage")
    }
    assert {m: ts for m, ts in bad.items() if ts} == {}


def test_issuer_modules_import_no_circle() -> None:
    graph = issuer_graph()
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> None:
        if node in path:
            pytest.fail("import circle: " + " -> ".join([*path[path.index(node) :], node]))
        if node in done:
            return
        for target in sorted(graph[node]):
            if not node.startswith(target + "."):  # its own packages: Python imports them first anyway
                visit(target, [*path, node])
        done.add(node)

    for module in sorted(graph):
        visit(module, [])


def test_layer_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself can fail: storage reaching up to the keys is named."""
    stray = tmp_path / "sql_stray.py"
    stray.write_text("from issuer.keys.sealing import Sealer\n", "utf-8")
    targets = imports_of(stray)
    assert "issuer.keys.sealing" in targets and layer("issuer.keys.sealing") > layer("issuer.storage.sql_stray")


@pytest.mark.parametrize("package", ["suishenma", "issuer", "verifier", "scanner_app"])
def test_no_product_module_imports_the_test_harnesses(package: str) -> None:
    users = [
        str(p.relative_to(PROJECT_ROOT))
        for p in (PROJECT_ROOT / package).rglob("*.py")
        if any(m == "testing" or m.startswith("testing.") for m in imports_of_any(p))
    ]
    assert users == []


def imports_of_any(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


@pytest.mark.parametrize(
    "package", ["issuer", "issuer.storage", "issuer.keys", "issuer.lists", "issuer.http", "issuer.cli"]
)
def test_each_issuer_package_says_its_role_and_lists_its_api(package: str) -> None:
    import importlib

    module = importlib.import_module(package)
    assert module.__doc__ and module.__doc__.strip()
    assert all(hasattr(module, name) for name in module.__all__)
