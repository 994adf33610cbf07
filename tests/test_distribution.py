"""Several devices and several processes: the same data trained on 1, 2 and 4 virtual CPU devices (data parallel,
and model parallel with row-split tables) reaches the same validation RMSE, and two processes started on
127.0.0.1 train one model together. Each case runs in a fresh interpreter, because JAX fixes its devices when it
starts."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import ratecast as rc
from ratecast import distribution as D

HERE = Path(__file__).parent

TRAIN = r"""
import json, sys
sys.path.insert(0, {tests!r})
import numpy as np, ratecast as rc
from ratecast import distribution as D
from synthetic import make_dataset
D.initialize()  # joins a multi-process run when RATECAST_COORDINATOR is set
ds = make_dataset(n_users=120, n_items=90, density=0.3, seed=1)
train = rc.split.holdout(ds, test_size=0.2, random_state=0).train
out = {{}}
for model in {models!r}:
    for name in {setups!r}:
        kind, _, n = name.partition(":")
        dist = None if kind == "one" else getattr(D, kind)(int(n) if n else None)
        rec = rc.Recommender(model, random_state=0, verbose=0, epochs=4, embedding_dim=8, batch_size=128,
                             distribution=dist).fit(train)
        users = list(train.ratings["user_id"].unique()[:3])
        top = rec.recommend_all(users, k=3)["item_id"].tolist()
        out[f"{{model}} {{name}}"] = {{"val_rmse": float(np.sqrt(rec.history_["val_mse"][-1]))
                                      if "val_mse" in rec.history_ else float(rec.history_["val_loss"][-1]),
                                      "top": top}}
print(json.dumps(out))
"""


def _run(script: str, devices: int, extra_env: dict | None = None, timeout: int = 600) -> subprocess.Popen:
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
           **(extra_env or {})}
    return subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _result(proc: subprocess.Popen, timeout: int = 600) -> dict:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_one_two_and_four_devices_reach_the_same_validation_rmse():
    setups = ["one", "data_parallel:2", "data_parallel:4", "model_parallel:4"]
    script = TRAIN.format(tests=str(HERE), models=["biased_dot", "hybrid"], setups=setups)
    res = _result(_run(script, devices=4))
    for model in ("biased_dot", "hybrid"):
        base = res[f"{model} one"]
        for name in setups[1:]:
            got = res[f"{model} {name}"]
            assert abs(got["val_rmse"] - base["val_rmse"]) <= 0.002, (model, name, got, base)
            assert got["top"] == base["top"], (model, name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_one_model_together():
    script = TRAIN.format(tests=str(HERE), models=["biased_dot"], setups=["data_parallel"])
    address = f"127.0.0.1:{_free_port()}"
    procs = [_run(script, devices=1, extra_env={"RATECAST_COORDINATOR": address, "RATECAST_NUM_PROCESSES": "2",
                                                 "RATECAST_PROCESS_ID": str(k)}) for k in range(2)]
    try:
        results = [_result(p) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    single = _result(_run(TRAIN.format(tests=str(HERE), models=["biased_dot"], setups=["one"]), devices=1))
    a, b = results[0]["biased_dot data_parallel"], results[1]["biased_dot data_parallel"]
    assert a == b  # one model: both processes hold the same weights
    assert abs(a["val_rmse"] - single["biased_dot one"]["val_rmse"]) <= 0.002


def test_distribution_arguments_are_checked():
    with pytest.raises(ValueError, match=r"devices must be between 1 and the \d+ available"):
        D.data_parallel(10_000)
    with pytest.raises(ValueError, match=r"devices must be drawn from \["):
        D.model_parallel(["tpu:7"])
    with pytest.raises(ValueError, match=r"distribution must come from ratecast.distribution.data_parallel\(\)"):
        rc.Recommender("dot", distribution="all")
    assert D.from_options(None, False) is None
    assert D.describe(D.model_parallel(1)) == "model_parallel over 1 devices"
