"""Load test of ``ratecast serve``: starts the server on 127.0.0.1, runs a bounded closed-loop load, stops both.

Protocol: a run folder (default: trains ``hybrid`` on ML-100k, lab split, 3 epochs, into a temporary folder), served
by one uvicorn worker on a free port of 127.0.0.1 with an admin token. The client (asyncio, one HTTP/1.1 keep-alive
connection per concurrent request, in this process; httpx only for start-up and the reload) keeps ``--concurrency``
requests in flight until ``--requests`` have been answered or ``--seconds`` have passed, in two phases:

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


class Connection:
    """One keep-alive HTTP/1.1 connection (asyncio streams): a client light enough that the server, not the
    client, is what is measured (httpx's own per-request cost caps it near 250 requests/s on this box)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader = self.writer = None

    async def request(self, method: str, url: str, body: dict | None = None) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        data = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {url} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(data)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        await self.writer.drain()
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split()[1])
        length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


async def phase(base: str, port: int, requests: int, seconds: float, concurrency: int, pick,
                reload_at: int | None = None):
    latencies, statuses, reload_answer = [], [], {}
    counter = iter(range(requests))
    deadline = time.perf_counter() + seconds
    reloading: list = []

    async def reload() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=120) as admin:
            r = await admin.post("/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"})
            reload_answer.update({"status": r.status_code, **r.json()})

    async def worker() -> None:
        conn = Connection(port)
        try:
            for n in counter:
                now = time.perf_counter()
                if now > deadline:
                    return
                # the reload starts half-way through: by request count or by time, whichever comes first
                if reload_at is not None and not reloading and (n >= reload_at or now > deadline - seconds / 2):
                    reloading.append(asyncio.get_running_loop().create_task(reload()))
                method, url, body = pick()
                start = time.perf_counter()
                try:
                    status = await conn.request(method, url, body)
                except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
                    status = 599
                    conn.close()
                    conn = Connection(port)
                latencies.append(time.perf_counter() - start)
                statuses.append(status)
        finally:
            conn.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - start
    if reloading:
        await asyncio.wait_for(reloading[0], timeout=120)
    lat = np.array(latencies) * 1000
    st = np.array(statuses)
    return {"requests": len(lat), "seconds": round(wall, 2), "requests_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p95_ms": round(float(np.percentile(lat, 95)), 2),
            "p99_ms": round(float(np.percentile(lat, 99)), 2), "non_2xx": int((st >= 300).sum()),
            "statuses": {str(k): int(v) for k, v in zip(*np.unique(st, return_counts=True))},
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
            items = [i["item_id"] for i in httpx.get(f"{base}/v1/items/search",  # 200 known items, most rated
                                                     params={"q": "(", "limit": 200}).json()["items"]]
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
                    return "GET", f"/v1/items/{rng.choice(items)}/similar?k=10", None
                pairs = [[int(rng.choice(users)), rng.choice(items)] for _ in range(20)]
                return "POST", "/v1/predict", {"pairs": pairs}

            asyncio.run(phase(base, port, 1000, 30, args.concurrency, mix))  # warm-up, not reported
            results = {"top10": asyncio.run(phase(base, port, args.requests, args.seconds, args.concurrency, top10)),
                       "mix": asyncio.run(phase(base, port, args.requests, args.seconds, args.concurrency, mix,
                                                reload_at=args.requests // 2))}
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(json.dumps({"benchmark": "serve", "protocol": f"1 uvicorn worker, client in the same box (asyncio HTTP/1.1 keep-alive), "
                      f"concurrency {args.concurrency}, closed loop, 127.0.0.1", "model": info["model"],
                      "startup_s": round(startup, 1), "cores": os.cpu_count(), **results}))


if __name__ == "__main__":
    main()
