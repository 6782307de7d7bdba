"""Package layering: imports go down the layers only, and the API loads without Lightning or FAISS."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import mixrep

PACKAGE = Path(mixrep.__file__).parent
SEPARATE_LAYER = next(i for i, layer in enumerate(mixrep.LAYERS) if "mixrep.console" in layer)
"""The layer whose packages (console, separation) must not import each other."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[int, str]:
    """``(layer index, owning prefix)``; every ``*.cli`` / ``*_cli`` command module is the top layer."""
    if module == "mixrep" or module.endswith((".cli", "_cli")):
        return len(mixrep.LAYERS) - 1, "mixrep.cli"
    for index, prefixes in enumerate(mixrep.LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return index, prefix
    raise AssertionError(f"{module} is in no layer of mixrep.LAYERS: add it to the list in mixrep/__init__.py")


def imports_of(path: Path, module: str | None = None) -> list[tuple[int, str]]:
    """Every ``mixrep`` module imported anywhere in the file (function-local imports included).

    ``module``: the file's module name, which resolves relative imports (default: from its place in
    the package; a file elsewhere, such as a probe under ``tmp_path``, names the module it stands for).
    """
    module = module_name(path) if module is None else module
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "mixrep"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the importing module's package
                base = module.split(".")
                base = base[: len(base) - node.level + (path.name == "__init__.py")]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "mixrep":
                # `from mixrep.frontend import FrontEnd` imports the package; a submodule import
                # (`from mixrep.datasets import tracks`) names the module itself.
                found.append((node.lineno, target))
    return found


def upward_imports(files: list[tuple[Path, str]]) -> list[str]:
    """Every import against the layer order in ``files``: ``(path, module name)`` pairs."""
    upward = []
    for path, importer in files:
        level, owner = layer_of(importer)
        for line, imported in imports_of(path, importer):
            if imported == "mixrep":
                continue
            imported_level, imported_owner = layer_of(imported)
            if imported_level > level:
                upward.append(f"{importer} line {line} ({owner}, layer {level + 1}) imports "
                              f"{imported} ({imported_owner}, layer {imported_level + 1})")
            elif imported_level == level == SEPARATE_LAYER and imported_owner != owner:
                # Packages sharing this layer (console / separation) do not import each other.
                upward.append(f"{importer} line {line} ({owner}) imports {imported} "
                              f"({imported_owner}) from the same layer {level + 1}")
    return upward


def test_every_import_goes_down_the_layers():
    upward = upward_imports([(path, module_name(path)) for path in sorted(PACKAGE.rglob("*.py"))])
    assert not upward, "imports against the layer order of mixrep/__init__.py:\n" + "\n".join(upward)


def test_the_layer_checker_sees_upward_imports_hidden_in_functions_and_relative_imports(tmp_path):
    # The checker itself could fail silently: feed it a probe standing for a low-level module
    # (mixrep.audio._layering_probe), written under tmp_path, never into the package.
    probe = tmp_path / "_layering_probe.py"
    probe.write_text("from . import io\n"
                     "def f():\n    from mixrep.training.contrastive import ContrastiveStyleModule\n"
                     "def g():\n    from ..inference import StyleTransfer\n")
    module = "mixrep.audio._layering_probe"
    assert imports_of(probe, module) == [(1, "mixrep.audio"), (3, "mixrep.training.contrastive"),
                                         (5, "mixrep.inference")]
    upward = upward_imports([(probe, module)])
    assert [line.split(" (")[0] for line in upward] == [f"{module} line 3", f"{module} line 5"], upward
    assert not list(PACKAGE.rglob("_layering_probe*"))


def import_graph() -> dict[str, set[str]]:
    """``{module: modules it imports}`` over every file of the package, function-local imports
    included; ``from package import name`` counts as importing the submodule ``package.name``
    where that is a module, else the package's ``__init__``."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for module, path in modules.items():
        targets = set()
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = [alias.name for alias in node.names]
                found = [target for line, target in imports_of(path) if line == node.lineno]
                for target in found:
                    subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
                    targets.update(subs)
                    if len(subs) < len(names):
                        targets.add(target)
            elif isinstance(node, ast.Import):
                targets.update(a.name for a in node.names if a.name in modules)
        graph[module] = {t for t in targets if t in modules and t != module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle (``[a, b, ..., a]``), or ``[]`` when the graph is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_no_import_circles_between_files():
    cycle = find_cycle(import_graph())
    assert not cycle, "import circle between files: " + " -> ".join(cycle)


def test_the_circle_finder_finds_a_circle_and_passes_a_tree():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_import_graph_sees_function_local_and_submodule_imports():
    graph = import_graph()
    # `from mixrep.console import functional as Fn` names a submodule, not the package
    assert "mixrep.console.functional" in graph["mixrep.console.processors"]
    # mixrep/__init__.py imports its lazy attributes inside a function: no file edge is drawn
    # for an importlib string, but a plain function-local import is an edge
    assert "mixrep.inference.style_encoder" in graph["mixrep.inference.style_transfer"]


def loaded_modules(module: str) -> list[str]:
    """The modules of Lightning, FAISS and mixrep.training that importing ``module`` loads (in a fresh interpreter)."""
    code = (f"import sys, {module}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'faiss') "
            "or m.startswith('mixrep.training')))")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return eval(out.stdout.strip())  # a printed list of strings


def test_importing_inference_loads_neither_lightning_nor_faiss_nor_training():
    assert loaded_modules("mixrep.inference") == []


def test_the_top_level_names_load_lazily_and_resolve():
    code = ("import sys, mixrep; light = 'torch' not in sys.modules; "
            "from mixrep import StyleEncoder, StyleTransfer; "
            "from mixrep.inference import StyleEncoder as E, StyleTransfer as T; "
            "print(light, StyleEncoder is E, StyleTransfer is T)")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "True", "True"]
