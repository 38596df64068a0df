"""Package boundaries that let ``omniconv verify`` and ``omniconv lint`` run from an installed
package: ``sim`` imports neither ``omniconv`` nor ``tests``, the cocotb test modules that sim
code runs are modules of ``sim``, the command modules import each other without a cycle, and
the data files the packages read are declared as package data."""

import ast
import importlib.util
import tomllib
from pathlib import Path

import networkx as nx

from sim.bench import conv_tb, gemm_tb
from sim.runner import REPO_ROOT


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def test_sim_imports_neither_omniconv_nor_tests():
    for path in sorted((REPO_ROOT / "sim").rglob("*.py")):
        bad = {n for n in _imports(path) if n.split(".")[0] in ("omniconv", "tests")}
        assert not bad, f"{path.relative_to(REPO_ROOT)} imports {sorted(bad)}"


def test_testbench_modules_live_in_sim():
    for tb in (conv_tb.TB_MODULE, gemm_tb.TB_MODULE):
        assert tb.startswith("sim.bench."), tb
        spec = importlib.util.find_spec(tb)
        assert spec is not None and Path(spec.origin).is_relative_to(REPO_ROOT / "sim"), tb


def test_omniconv_modules_import_without_cycles():
    graph = nx.DiGraph()
    for path in sorted((REPO_ROOT / "omniconv").glob("*.py")):
        module = f"omniconv.{path.stem}"
        graph.add_node(module)
        for name in _imports(path):
            if name.startswith("omniconv.") and (REPO_ROOT / f"{name.replace('.', '/')}.py"
                                                 ).is_file() and name != module:
                graph.add_edge(module, name)
    assert graph.has_edge("omniconv.flow", "omniconv.overlay")
    assert list(nx.simple_cycles(graph)) == []


def test_package_data_covers_the_data_files():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    data = project["package-data"]
    include = project["packages"]["find"]["include"]
    for folder in ("configs", "boards"):
        assert folder in include and data[folder] == ["*.yaml"]
        assert list((REPO_ROOT / folder).glob("*.yaml"))
    for path in sorted((REPO_ROOT / "dse").rglob("*.json")):
        rel = path.relative_to(REPO_ROOT / "dse").as_posix()
        assert any(Path(rel).match(glob) for glob in data["dse"]), rel
