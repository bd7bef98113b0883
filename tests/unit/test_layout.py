"""The imports run one way: the product (`__main__.py`, `infra/`) never loads the proof tooling.

`proof/` (the program under mocks, the harness that drives the real CLI) imports the
product; the product imports neither it nor `tests` nor `bench`, has no import circle and no import
deferred into a function (a deferred import is how a circle hides).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from infra.identity import PROJECT_DIR

PRODUCT = [PROJECT_DIR / "__main__.py", *sorted((PROJECT_DIR / "infra").glob("*.py"))]
TOOLING_PACKAGES = ("proof", "tests", "bench")


def module_name(path: Path) -> str:
    relative = path.relative_to(PROJECT_DIR).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module imported, line, deferred: inside a function or class body) for each import in `path`."""
    tree = ast.parse(path.read_text(), str(path))
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, nested) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.append((child.module, child.lineno, nested))
                # `from infra import canonical` imports the module infra.canonical
                found.extend((f"{child.module}.{alias.name}", child.lineno, nested) for alias in child.names)
            visit(child, inner)

    visit(tree, False)
    return found


def test_the_program_loads_no_tooling_in_a_fresh_interpreter() -> None:
    script = "import json, sys\nimport infra.program\nprint(json.dumps(sorted(sys.modules)))\n"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120, check=True
    )
    loaded = json.loads(result.stdout)
    assert "infra.program" in loaded  # the check saw the program
    tooling = [m for m in loaded if m.split(".")[0] in TOOLING_PACKAGES]
    assert tooling == [], f"importing the program loaded the proof tooling: {tooling}"


@pytest.mark.parametrize("path", PRODUCT, ids=lambda p: p.relative_to(PROJECT_DIR).as_posix())
def test_a_product_module_imports_no_tooling_and_defers_no_import(path: Path) -> None:
    found = imports(path)
    assert found or path.name == "__init__.py"
    for module, line, deferred in found:
        where = f"{path.relative_to(PROJECT_DIR)}:{line}"
        assert module.split(".")[0] not in TOOLING_PACKAGES, f"{where} imports {module}"
        # The SDK loads pulumi.runtime.mocks itself (pulumi/runtime/__init__.py); the program never names it.
        assert not module.startswith("pulumi.runtime.mocks"), f"{where} imports the mocks"
        assert not deferred, f"{where} defers `import {module}` into a function (a hidden circle?)"


def test_the_product_has_no_import_circle() -> None:
    modules = {module_name(p): p for p in PRODUCT}
    edges = {name: {m for m, _, _ in imports(path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", f"import circle: {' -> '.join([*trail, name])}"
        state[name] = "open"
        for target in sorted(edges[name]):
            visit(target, [*trail, name])
        state[name] = "done"

    for name in sorted(modules):
        visit(name, [])


@pytest.mark.parametrize("package", ["proof", "bench"])
def test_the_tooling_and_the_benchmark_import_no_test_module(package: str) -> None:
    paths = sorted((PROJECT_DIR / package).rglob("*.py"))
    assert paths
    for path in paths:
        for module, line, _ in imports(path):
            assert module.split(".")[0] != "tests", f"{path.relative_to(PROJECT_DIR)}:{line}: {module}"
            if package == "proof":
                assert module.split(".")[0] != "bench", f"{path.relative_to(PROJECT_DIR)}:{line}: {module}"


def test_the_circle_check_can_fail(tmp_path: Path) -> None:
    """The walker sees a circle through `from x import y` forms."""
    (tmp_path / "a.py").write_text("from infra import b\n")
    found = imports(tmp_path / "a.py")
    assert ("infra.b", 1, False) in found
    (tmp_path / "c.py").write_text("def f():\n    import infra.d\n")
    assert imports(tmp_path / "c.py") == [("infra.d", 2, True)]


def test_nothing_points_outside_the_checkout_but_ci_at_its_plugin_mirror() -> None:
    """A user's checkout is all there is: no file names a folder beside it. CI's machine alone keeps
    Pulumi's plugins beside the checkout, and .ci/run names that mirror once, as ICB_PLUGINS_FROM."""
    tracked = subprocess.run(["git", "ls-files"], cwd=PROJECT_DIR, capture_output=True, text=True, check=False)
    if tracked.returncode != 0:
        pytest.fail(f"git ls-files failed in {PROJECT_DIR}: {tracked.stderr.strip()}", pytrace=False)
    outside = "../" + "shared"  # spelled in two parts so that this file does not name it
    pointing = {
        name: [line for line in (PROJECT_DIR / name).read_text(errors="replace").splitlines() if outside in line]
        for name in tracked.stdout.splitlines()
        if (PROJECT_DIR / name).is_file()
    }
    pointing = {name: lines for name, lines in pointing.items() if lines}
    ci_lines = pointing.pop(".ci/run", [])
    assert pointing == {}, f"these files point outside the checkout: {sorted(pointing)}"
    assert len(ci_lines) == 1 and ci_lines[0].startswith("export ICB_PLUGINS_FROM="), ci_lines
