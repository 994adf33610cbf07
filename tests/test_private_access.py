"""No module of ratecast reaches into another module's private names: no ``obj._name`` (nor ``getattr(obj,
"_name")``) on anything but ``self``/``cls``/``super()`` unless ``_name`` is defined in the same module, and no
``from x import _y``. What one module needs of another is public, with a docstring (e.g. the recommender's
``candidates``, ``check_k``, ``item_frame`` and ``list_metrics``, used by ``Blend`` and tuning)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ratecast

PACKAGE = Path(ratecast.__file__).parent

#: private names of other libraries that ratecast cannot do without, each with its reason
ALLOWED = {
    # Keras has no public walk over nested sublayers (``Model.layers`` is one level deep)
    ("engine/compiled.py", "model._flatten_layers"),
    # a named tuple's copy with fields replaced: public API of collections.namedtuple despite its underscore
    ("runs.py", "sp._replace"),
}


def private(name) -> bool:
    return isinstance(name, str) and name.startswith("_") and not name.startswith("__")


def defined_here(tree: ast.Module) -> set[str]:
    """The private names a module defines itself: functions, classes, assigned names and attributes."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Store):
            names.add(node.id if isinstance(node, ast.Name) else node.attr)
    return {n for n in names if private(n)}


def on_self(value: ast.expr) -> bool:
    return (isinstance(value, ast.Name) and value.id in ("self", "cls")) or (
        isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super")


def private_access(path: Path) -> list[str]:
    """Where the module at ``path`` uses a private name of another module (``file:line: code``)."""
    tree = ast.parse(path.read_text(), str(path))
    own = defined_here(tree)
    where = path.relative_to(PACKAGE).as_posix()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            reached = [a.name for a in node.names if private(a.name)]
        elif isinstance(node, ast.Attribute) and private(node.attr) and not on_self(node.value):
            reached = [node.attr] if node.attr not in own else []
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (
                "getattr", "setattr", "hasattr", "delattr") and len(node.args) > 1 \
                and isinstance(node.args[1], ast.Constant) and private(node.args[1].value) \
                and not on_self(node.args[0]):
            reached = [node.args[1].value] if node.args[1].value not in own else []
        else:
            continue
        code = ast.unparse(node)
        if reached and (where, code) not in ALLOWED:
            found.append(f"{where}:{node.lineno}: {code[:80]}")
    return sorted(found, key=lambda line: int(line.split(":")[1]))


def test_the_scan_sees_each_kind_of_private_access(tmp_path, monkeypatch):
    module = tmp_path / "m.py"
    module.write_text("from x import _y, z\n"
                      "class A:\n"
                      "    def f(self, other):\n"
                      "        self._a = other._b\n"
                      "        getattr(other, '_c')\n"
                      "        return other._a, super()._d, self._e\n")
    monkeypatch.setattr(f"{__name__}.PACKAGE", tmp_path)
    assert private_access(module) == ["m.py:1: from x import _y, z", "m.py:4: other._b",
                                      "m.py:5: getattr(other, '_c')"]


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_no_module_reaches_into_another_modules_private_names(path):
    assert private_access(path) == []
