"""Per-epoch checkpoints: one ``checkpoint.npz`` file (model variables, optimizer variables, best weights and the
loop's progress as JSON), written to a temporary file and renamed, so a kill at any moment leaves the previous
checkpoint whole (and the next write removes the temporary it left)."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import IntegrityError
from ..io import atomic_path

FILE = "checkpoint.npz"


@dataclass
class Progress:
    """Where the epoch loop stands."""

    fingerprint: str
    epoch: int = 0  # epochs completed
    history: dict[str, list[float]] = field(default_factory=dict)
    best_loss: float | None = None
    best_epoch: int = 0
    wait: int = 0

    def record(self, epoch: int, logs: dict[str, float], watch: bool, monitor: str = "val_loss") -> bool:
        """Add epoch ``epoch``'s (0-based) logs. With ``watch`` (early stopping on), track the best value of
        ``monitor`` (a loss is best low, anything else high); True when this epoch is the new best."""
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.epoch = epoch + 1
        if not watch:
            return False
        score = logs[monitor] if monitor == "val_loss" else -logs[monitor]  # kept as lower-is-better
        if self.best_loss is None or score < self.best_loss:
            self.best_loss, self.best_epoch, self.wait = score, epoch + 1, 0
            return True
        self.wait += 1
        return False


def save(folder: str | os.PathLike, progress: Progress, variables: list[np.ndarray], optimizer: list[np.ndarray],
         best: list[np.ndarray] | None) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {f"v{k}": np.asarray(v) for k, v in enumerate(variables)}
    arrays.update({f"o{k}": np.asarray(v) for k, v in enumerate(optimizer)})
    arrays.update({f"b{k}": np.asarray(v) for k, v in enumerate(best or [])})
    arrays["progress"] = np.array(json.dumps(asdict(progress)))
    with atomic_path(folder / FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)
    return folder / FILE


def load(folder: str | os.PathLike, fingerprint: str
         ) -> tuple[Progress, list[np.ndarray], list[np.ndarray], list[np.ndarray]] | None:
    """The checkpoint in ``folder`` (None when there is none). It must have been written for the same model, options
    and data (``fingerprint``)."""
    path = Path(folder) / FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as npz:
            progress = Progress(**json.loads(str(npz["progress"])))
            take = lambda p: [npz[f"{p}{k}"] for k in range(sum(1 for n in npz.files if n[0] == p and n[1:].isdigit()))]
            variables, optimizer, best = take("v"), take("o"), take("b")
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile, EOFError) as exc:
        raise IntegrityError(f"{path}: unreadable checkpoint ({type(exc).__name__}: {exc}); delete it to start over"
                             ) from None
    if progress.fingerprint != fingerprint:
        raise IntegrityError(f"{path}: the checkpoint was written for another model, options or data; delete it "
                             "or train into another folder")
    return progress, variables, optimizer, best
