"""The shape of the code, held: imports run one way (import-linter's contracts in pyproject.toml, and what a
contract cannot say), the checker can fail, and a function-level import of bench's own code says why it is there."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("bench", "scrapers")


def lint_imports(cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("lint-imports")
    return subprocess.run([str(exe), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.process
def test_the_import_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.slow
@pytest.mark.process
def test_the_contract_checker_fails_on_a_planted_circle(tmp_path):
    """A copy of the package with one upward import (trial -> runner, which imports trial: a circle) must fail."""
    import os

    for name in PACKAGES:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    trial = tmp_path / "bench" / "trial.py"
    trial.write_text(trial.read_text() + "\n\ndef _planted():\n    from bench.runner import run_trials  # planted\n"
                     "    return run_trials\n")
    result = lint_imports(tmp_path, {**os.environ, "PYTHONPATH": str(tmp_path)})
    assert result.returncode == 1, result.stdout[-3000:]
    assert "BROKEN" in result.stdout and "bench.trial -> bench.runner" in result.stdout


def _modules():
    for name in PACKAGES:
        for path in sorted((REPO / name).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield path, module, path.name == "__init__.py"


def _imports(tree: ast.AST, module: str, is_package: bool):
    """(node, absolute module name) of every import in a module, relative ones resolved."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            folder = REPO.joinpath(*source.split("."))
            for alias in node.names:  # `from bench import runner` imports the module bench.runner
                is_module = (folder / f"{alias.name}.py").exists() or (folder / alias.name).is_dir()
                yield node, f"{source}.{alias.name}" if is_module else source


def test_no_module_imports_its_own_package_back():
    """torch-fidelity's one-way registries: a package's modules import its base module, never the package, whose
    __init__ imports them (a circle that only import order keeps working)."""
    offenders = []
    for path, module, is_package in _modules():
        if is_package:
            continue
        tree = ast.parse(path.read_text())
        for node, imported in _imports(tree, module, False):
            package = module.rsplit(".", 1)[0]
            if imported == package and "." in module:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno} imports its package {package}")
    assert not offenders, "\n".join(offenders)


def _reasoned(lines: list[str], node: ast.stmt, body: list[ast.stmt]) -> bool:
    """An import says why when its line has a comment, or the comment line just above it (or above the run of
    imports it belongs to) does."""
    if "#" in lines[node.lineno - 1]:
        return True
    index = body.index(node)
    while index > 0 and isinstance(body[index - 1], ast.Import | ast.ImportFrom) and \
            body[index - 1].end_lineno + 1 >= body[index].lineno:
        index -= 1
    first = body[index]
    above = lines[first.lineno - 2].strip() if first.lineno >= 2 else ""
    return above.startswith("#") or "#" in lines[first.lineno - 1]


def _function_level_imports(tree: ast.AST):
    """(import node, the statement list holding it) for every import inside a function."""
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for block in ast.walk(function):
                for field in ("body", "orelse", "finalbody"):
                    body = getattr(block, field, None)
                    for node in body if isinstance(body, list) else ():
                        if isinstance(node, ast.Import | ast.ImportFrom):
                            yield node, body


def test_function_level_imports_of_bench_say_why():
    """Imports go at the top; one inside a function (to keep `bench` light, or an optional extra) says why."""
    offenders = set()
    for path, module, is_package in _modules():
        source = path.read_text()
        lines = source.splitlines()
        for node, body in _function_level_imports(ast.parse(source)):
            names = [n for _, n in _imports(node, module, is_package)]
            if any(n and n.split(".")[0] in PACKAGES for n in names) and not _reasoned(lines, node, body):
                offenders.add(f"{path.relative_to(REPO)}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    assert not offenders, f"{len(offenders)} function-level imports without a reason:\n" + "\n".join(sorted(offenders))


def test_only_the_executors_package_tells_executors_apart_by_name():
    """Callers ask an executor what they need (in_process, live_status, workers_line, capacity) and a Placement
    (capped, most_workers); `make_executor` is the one switch on the name."""
    found = []
    for path in sorted((REPO / "bench").rglob("*.py")):
        if "executors" in path.relative_to(REPO / "bench").parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare) and any(
                    isinstance(side, ast.Attribute) and side.attr == "executor" or
                    isinstance(side, ast.Name) and side.id == "executor" for side in [node.left, *node.comparators]):
                found.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert not found, f"compare an executor's name outside bench/executors/: {found}"
