"""Provider modules reach the core only through the provider contract (issue 13): at run time they
import from flows/hooks.py and the small modules below it, never the engine, the ledger or the
HTTP sender (those only for type hints, as hooks.py itself does), and never inside a function."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROVIDERS = Path(__file__).resolve().parents[1] / "flows" / "providers"
#: what a provider module may import at run time, besides the standard library, pydantic and itself
ALLOWED = {"flows.hooks", "flows.outcomes", "flows.redact", "flows.errors", "flows.http.readback",
           "flows.mapping.datetimes"}
#: what it may name for type hints only (under ``if TYPE_CHECKING:``), as the contract does
TYPES_ONLY = {"flows.http.sender", "flows.ledger.ledger"}


def _absolute(path: Path, node: ast.ImportFrom) -> str:
    package = ["flows", *path.relative_to(PROVIDERS.parent).parent.parts]
    if node.level == 0:
        return node.module or ""
    base = package[:len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(path: Path) -> tuple[list[str], list[str], list[int]]:
    """(run-time imports of flows.*, type-only imports, lines of imports inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    runtime: list[str] = []
    typing_only: list[str] = []
    nested: list[int] = []
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            typing_only += [_absolute(path, n) for n in node.body if isinstance(n, ast.ImportFrom)]
        elif isinstance(node, ast.ImportFrom):
            runtime.append(_absolute(path, node))
        elif isinstance(node, ast.Import):
            runtime += [a.name for a in node.names]
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            nested += [n.lineno for n in ast.walk(fn) if isinstance(n, (ast.Import, ast.ImportFrom))]
    return [m for m in runtime if m.startswith("flows")], typing_only, nested


MODULES = sorted(PROVIDERS.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PROVIDERS)))
def test_provider_module_imports_only_the_contract_and_below(path: Path) -> None:
    runtime, typing_only, nested = _imports(path)
    outside = [m for m in runtime if m not in ALLOWED and not m.startswith("flows.providers")]
    assert not outside, f"{path.name} imports {outside} at run time; use flows/hooks.py or a module below it"
    assert set(typing_only) <= TYPES_ONLY | ALLOWED, f"{path.name} names {typing_only} for types"
    assert not nested, f"{path.name} imports inside a function (lines {nested})"


def test_the_check_sees_the_providers() -> None:
    runtime, typing_only, _ = _imports(PROVIDERS / "servicemobility" / "followup.py")
    assert "flows.hooks" in runtime and "flows.outcomes" in runtime
    assert typing_only == ["flows.http.sender"]
