"""The command line's package: its start-up cost, and the options every command takes."""

import json
import subprocess
import sys

HEAVY = ("keras", "jax", "jaxlib", "optuna", "matplotlib", "fastapi", "uvicorn", "sklearn", "scipy", "plotly", "umap")

HELP_THEN_MODULES = """
import json, sys
base = set(sys.modules)
import ratecast
light = set(sys.modules)
from ratecast.cli import app
try:
    app(["--help"], prog_name="ratecast")
except SystemExit as exc:
    code = exc.code
sys.stderr.write(json.dumps({"code": code, "package": sorted(light - base), "cli": sorted(set(sys.modules) - light)}))
"""


def test_help_imports_no_machine_learning_or_plotting_library():
    proc = subprocess.run([sys.executable, "-c", HELP_THEN_MODULES], capture_output=True, text=True, timeout=120)
    found = json.loads(proc.stderr.strip().splitlines()[-1])
    assert found["code"] == 0 and "Usage" in proc.stdout
    top = {m.split(".")[0] for m in found["package"] + found["cli"]}
    assert not top & set(HEAVY), sorted(top & set(HEAVY))
    # what the command line adds to the library's own import: its console and option parsing, no data library
    added = {m.split(".")[0] for m in found["cli"]}
    assert not added & {"pandas", "numpy", "pyarrow"}, sorted(added)

