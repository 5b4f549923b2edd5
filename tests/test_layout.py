"""The house's layout rules, read from the source: no module imports another's private names."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "keras_label_relaxation"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def test_no_module_imports_another_modules_private_names():
    modules = dict(_modules())
    found = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text())
        imported = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "keras_label_relaxation"
            ):
                for alias in node.names:
                    if f"{node.module}.{alias.name}" in modules:  # a module, e.g. _numerics
                        imported[alias.asname or alias.name] = alias.name
                    elif alias.name.startswith("_"):
                        found.append(f"{name}: from {node.module} import {alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in imported
                and node.attr.startswith("_")
            ):
                found.append(f"{name}:{node.lineno}: {node.value.id}.{node.attr}")
    assert not found, "\n".join(found)
