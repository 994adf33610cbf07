"""The tutorial notebook runs top to bottom against the local ML-100k copy (so it cannot rot)."""


import pytest

from conftest import REPO


@pytest.mark.slow
def test_tutorial_executes(ml100k, data_home, tmp_path, monkeypatch):
    jupytext = pytest.importorskip("jupytext")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("RATECAST_DATA", str(data_home))
    monkeypatch.setenv("RATECAST_TUTORIAL_EPOCHS", "2")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = jupytext.read(REPO / "docs" / "tutorial.py")
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = " ".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "Return of the Jedi" in text and "test MAE" in text
