"""Layering: the training engines use the models, never the other way round, and both engines run the one epoch
loop."""

import ast
from pathlib import Path

import ratecast

SRC = Path(ratecast.__file__).parent


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module a file imports, at any depth of the file (lazy imports in functions included), resolved to
    absolute ``ratecast....`` names."""
    tree = ast.parse(path.read_text())
    parts = package.split(".")
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = parts[:len(parts) - node.level + 1] if node.level else []
            name = ".".join(base + ([node.module] if node.module else []))
            out.add(name)
            out.update(f"{name}.{alias.name}" for alias in node.names)
    return out


def package_of(path: Path) -> str:
    rel = path.relative_to(SRC.parent).with_suffix("")
    names = list(rel.parts)
    return ".".join(names[:-1]) if names[-1] != "__init__" else ".".join(names[:-1])


def test_models_never_import_the_engines():
    offenders = {}
    for path in sorted((SRC / "models").glob("*.py")):
        package = package_of(path) if path.name != "__init__.py" else "ratecast.models"
        bad = sorted(m for m in imported_modules(path, package) if m.startswith("ratecast.engine"))
        if bad:
            offenders[path.name] = bad
    assert offenders == {}


def test_the_import_check_sees_relative_and_lazy_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from ..engine import training\ndef f():\n    from ..engine.epochs import run_epochs\n")
    found = imported_modules(module, "ratecast.models")
    assert {"ratecast.engine.training", "ratecast.engine.epochs"} <= found


def test_both_engines_run_the_one_epoch_loop():
    from ratecast.engine import compiled, epochs, keras_fit, training

    source = (SRC / "engine" / "training.py").read_text()
    assert source.count("run_epochs(") == 1
    for module in (compiled, keras_fit):
        text = Path(module.__file__).read_text()
        assert "for epoch in range" not in text and "early_stopping" not in text and "ckpt." not in text
    runner_methods = {"restore", "train_epoch", "validate", "sync", "checkpoint_arrays", "best_weights",
                      "set_weights"}
    for runner in (compiled.CompiledRunner, keras_fit.KerasRunner):
        assert runner_methods <= set(dir(runner))
    assert epochs.run_epochs is training.run_epochs
