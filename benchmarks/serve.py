"""Load test of ``ratecast serve``: starts the server on 127.0.0.1, runs a bounded closed-loop load, stops both.

Protocol: a run folder (default: trains ``hybrid`` on ML-100k, lab split, 3 epochs, into a temporary folder), served
by one uvicorn worker on a free port of 127.0.0.1 with an admin token. The client (httpx, HTTP/1.1 keep-alive, in
this process) keeps ``--concurrency`` requests in flight until ``--requests`` have been answered or ``--seconds``
have passed, in two phases:

* ``top10``: ``GET /v1/users/{id}/recommendations?k=10`` for random known users (the targets' figure);
* ``mix``: 70% recommendations, 10% for unknown users (popular fallback), 10% similar items, 10% predict (20 pairs),
  with ``POST /admin/reload`` of the same run in the middle of the phase.

Prints one JSON line: per phase requests/s, p50/p95/p99 latency in ms, non-2xx and 5xx counts, and the reload's
answer. Load goes only to 127.0.0.1.

    RATECAST_DATA=../shared/data python benchmarks/serve.py [--run RUN_DIR] [--requests 20000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

TOKEN = "benchmark-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train(folder: Path) -> Path:
    out = folder / "hybrid"
    subprocess.run([sys.executable, "-m", "ratecast.cli", "train", "--model", "hybrid", "--epochs", "3", "--out",
                    str(out), "-q"], check=True)
    return out


async def phase(base: str, requests: int, seconds: float, concurrency: int, pick, reload_at: int | None = None):
    latencies, statuses, reload_answer = [], [], {}
    counter = iter(range(requests))
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        async def reload() -> None:
            r = await client.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
            reload_answer.update({"status": r.status_code, **r.json()})

        async def worker() -> None:
            for n in counter:
                if time.perf_counter() > deadline:
                    return
                if reload_at is not None and n == reload_at:
                    asyncio.get_running_loop().create_task(reload())
                method, url, body = pick()
                start = time.perf_counter()
                try:
                    r = await (client.get(url) if method == "GET" else client.post(url, json=body))
                    status = r.status_code
                except httpx.HTTPError:
                    status = 599
                latencies.append(time.perf_counter() - start)
                statuses.append(status)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
        while reload_at is not None and not reload_answer:
            await asyncio.sleep(0.05)
    lat = np.array(latencies) * 1000
    st = np.array(statuses)
    return {"requests": len(lat), "seconds": round(wall, 2), "requests_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2), "non_2xx": int((st >= 300).sum()),
            "5xx": int((st >= 500).sum()), **({"reload": reload_answer} if reload_at is not None else {})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=None)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run = args.run or train(Path(tmp))
        port = free_port()
        env = {**os.environ, "RATECAST_ADMIN_TOKEN": TOKEN}
        server = subprocess.Popen([sys.executable, "-m", "ratecast.cli", "serve", str(run), "--port", str(port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        base = f"http://127.0.0.1:{port}"
        try:
            started = time.perf_counter()
            while True:
                if server.poll() is not None:
                    raise SystemExit(f"the server stopped: {server.stderr.read()[-2000:]}")
                try:
                    if httpx.get(f"{base}/ready", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)
            startup = time.perf_counter() - started
            info = httpx.get(f"{base}/v1/model").json()
            users = [str(u) for u in range(1, info["users"] + 1)]
            rng = random.Random(0)

            def top10():
                return "GET", f"/v1/users/{rng.choice(users)}/recommendations?k=10", None

            def mix():
                r = rng.random()
                if r < 0.7:
                    return top10()
                if r < 0.8:
                    return "GET", f"/v1/users/stranger{rng.randrange(1000)}/recommendations?k=10", None
                if r < 0.9:
                    return "GET", f"/v1/items/{rng.randrange(1, 1683)}/similar?k=10", None
                pairs = [[int(rng.choice(users)), rng.randrange(1, 1683)] for _ in range(20)]
                return "POST", "/v1/predict", {"pairs": pairs}

            asyncio.run(phase(base, 500, 30, args.concurrency, mix))  # warm-up, not reported
            results = {"top10": asyncio.run(phase(base, args.requests, args.seconds, args.concurrency, top10)),
                       "mix": asyncio.run(phase(base, args.requests, args.seconds, args.concurrency, mix,
                                                reload_at=args.requests // 2))}
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps({"benchmark": "serve", "protocol": f"1 uvicorn worker, client in the same box (httpx), "
                      f"concurrency {args.concurrency}, closed loop, 127.0.0.1", "model": info["model"],
                      "startup_s": round(startup, 1), "cores": os.cpu_count(), **results}))


if __name__ == "__main__":
    main()
