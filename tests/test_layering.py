"""Package layering: imports go down the layers only, and the API loads without Lightning or FAISS."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import mixrep

PACKAGE = Path(mixrep.__file__).parent
SEPARATE_LAYER = next(i for i, layer in enumerate(mixrep.LAYERS) if "mixrep.models" in layer)
"""The layer whose packages (models, console, separation) must not import each other."""


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> tuple[int, str]:
    """``(layer index, owning prefix)``; every ``*.cli`` module is the top layer."""
    if module == "mixrep" or module.endswith(".cli"):
        return len(mixrep.LAYERS) - 1, "mixrep.cli"
    for index, prefixes in enumerate(mixrep.LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                return index, prefix
    raise AssertionError(f"{module} is in no layer of mixrep.LAYERS: add it to the list in mixrep/__init__.py")


def imports_of(path: Path) -> list[tuple[int, str]]:
    """Every ``mixrep`` module imported anywhere in the file (function-local imports included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.split(".")[0] == "mixrep"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the importing module's package
                base = module_name(path).split(".")
                base = base[: len(base) - node.level + (path.name == "__init__.py")]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "mixrep":
                # `from mixrep.frontend import FrontEnd` imports the package; a submodule import
                # (`from mixrep.data import tracks`) names the module itself.
                found.append((node.lineno, target))
    return found


def test_every_import_goes_down_the_layers():
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        level, owner = layer_of(importer)
        for line, imported in imports_of(path):
            if imported == "mixrep":
                continue
            imported_level, imported_owner = layer_of(imported)
            if imported_level > level:
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({owner}, layer {level + 1}) imports "
                              f"{imported} ({imported_owner}, layer {imported_level + 1})")
            elif imported_level == level == SEPARATE_LAYER and imported_owner != owner:
                # Packages sharing a layer (models / console / separation) do not import each other.
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({owner}) imports {imported} "
                              f"({imported_owner}) from the same layer {level + 1}")
    assert not upward, "imports against the layer order of mixrep/__init__.py:\n" + "\n".join(upward)


def test_the_layer_checker_sees_an_upward_function_local_import(tmp_path):
    # The checker itself could fail silently; feed it a low-level module with a hidden upward import.
    fake = PACKAGE / "audio" / "_layering_probe.py"
    fake.write_text("def f():\n    from mixrep.training.contrastive import ContrastiveStyleModule\n")
    try:
        imports = imports_of(fake)
        assert imports == [(2, "mixrep.training.contrastive")]
        assert layer_of(module_name(fake))[0] < layer_of(imports[0][1])[0]
    finally:
        fake.unlink()


def test_importing_the_api_loads_neither_lightning_nor_faiss():
    code = ("import sys, mixrep.api; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'faiss')))")
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
