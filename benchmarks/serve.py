"""A bounded load test of ``convsight serve`` on 127.0.0.1 only: a fixed number of requests per run,
a time limit per run, and it stops by itself (the server it starts is stopped at the end).

    .venv/bin/python benchmarks/serve.py [--requests 40] [--clients 1,2,4] [--time-limit 120]

For 1, 2 and 4 concurrent clients it sends ``--requests`` requests (detect, faces, style in turn, one
512 px photo: scikit-image's astronaut) while a probe asks ``/healthz`` every 50 ms. It prints, per
run: requests/s, p50/p95/p99 latency per task, ``/healthz`` p50/p95 under the load, the count of 503s
and of other failures, the server's peak RSS (VmHWM) and the bytes of temporary files left behind
(the server runs with its own empty TMPDIR, checked after each run).
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from _machine import machine_line  # benchmarks/_machine.py, beside this script

TASKS = ("detect", "faces", "style")


def _photo() -> bytes:
    from skimage import data

    buf = io.BytesIO()
    Image.fromarray(data.astronaut()).resize((512, 512)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _request(port: int, method: str, path: str, body: bytes | None = None, ctype: str | None = None,
             timeout: float = 120) -> tuple[int, float]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    t0 = time.perf_counter()
    try:
        conn.request(method, path, body, {"Content-Type": ctype} if ctype else {})
        r = conn.getresponse()
        r.read()
        return r.status, time.perf_counter() - t0
    except OSError:
        return 0, time.perf_counter() - t0
    finally:
        conn.close()


def _multipart(photo: bytes, task: str) -> tuple[bytes, str]:
    b = uuid.uuid4().hex
    body = (f'--{b}\r\nContent-Disposition: form-data; name="task"\r\n\r\n{task}\r\n'
            f'--{b}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + photo + f"\r\n--{b}--\r\n".encode()
    return body, f"multipart/form-data; boundary={b}"


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _tmp_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return float(np.percentile(np.asarray(values) * 1000, q))


def run_load(port: int, photo: bytes, clients: int, requests: int, time_limit: float) -> dict[str, object]:
    jobs = [TASKS[i % len(TASKS)] for i in range(requests)]
    lock, results = threading.Lock(), []
    deadline = time.monotonic() + time_limit
    stop, health = threading.Event(), []

    def probe() -> None:
        while not stop.is_set():
            status, dt = _request(port, "GET", "/healthz", timeout=5)
            health.append(dt if status == 200 else float("inf"))
            stop.wait(0.05)

    def client(k: int) -> None:
        for task in jobs[k::clients]:
            if time.monotonic() > deadline:
                return
            body, ctype = _multipart(photo, task)
            status, dt = _request(port, "POST", "/api/run", body, ctype)
            with lock:
                results.append((task, status, dt))

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    stop.set()
    prober.join(10)
    ok = [r for r in results if r[1] == 200]
    row: dict[str, object] = {"clients": clients, "sent": len(results), "ok": len(ok),
                              "503": sum(r[1] == 503 for r in results),
                              "failed": sum(r[1] not in (200, 503) for r in results),
                              "req/s": len(ok) / wall if wall else float("nan"),
                              "healthz p50 ms": _pct(health, 50), "healthz p95 ms": _pct(health, 95)}
    for task in TASKS:
        times = [dt for t, s, dt in ok if t == task]
        row[task] = "/".join(f"{_pct(times, q):.0f}" for q in (50, 95, 99))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=40, help="requests per run (bounded)")
    ap.add_argument("--clients", default="1,2,4", help="concurrent clients per run, comma-separated")
    ap.add_argument("--time-limit", type=float, default=120.0, help="seconds per run; clients stop sending past it")
    ap.add_argument("--workers", type=int, default=None, help="server --workers (default: its own)")
    args = ap.parse_args()
    if not 1 <= args.requests <= 1000 or not 0 < args.time_limit <= 600:
        sys.exit("benchmarks/serve.py: --requests must be 1-1000 and --time-limit 0-600 s")
    print(machine_line("fp32") + " (this process; the server picks its own threads)", flush=True)
    photo, port = _photo(), _free_port()
    with tempfile.TemporaryDirectory(prefix="convsight-bench-serve-") as tmp:
        env = dict(os.environ, TMPDIR=tmp)
        cmd = [sys.executable, "-m", "convsight", "serve", "--host", "127.0.0.1", "--port", str(port)]
        if args.workers:
            cmd += ["--workers", str(args.workers)]
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 180
            while _request(port, "GET", "/readyz", timeout=2)[0] != 200:
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"benchmarks/serve.py: the server did not get ready: {server.stderr.read().decode()[-500:]}")  # type: ignore[union-attr]
                time.sleep(0.2)
            rows = []
            for clients in (int(c) for c in args.clients.split(",")):
                row = run_load(port, photo, clients, args.requests, args.time_limit)
                row["peak RSS MB"] = _peak_rss_mb(server.pid)
                row["tmp bytes left"] = _tmp_bytes(Path(tmp))
                rows.append(row)
        finally:
            server.terminate()
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()
    cols = ["clients", "sent", "ok", "503", "failed", "req/s", *[f"{t} p50/p95/p99 ms" for t in TASKS],
            "healthz p50 ms", "healthz p95 ms", "peak RSS MB", "tmp bytes left"]
    print("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for row in rows:
        vals = [row["clients"], row["sent"], row["ok"], row["503"], row["failed"], f"{row['req/s']:.2f}",
                *[row[t] for t in TASKS], f"{row['healthz p50 ms']:.1f}", f"{row['healthz p95 ms']:.1f}",
                f"{row['peak RSS MB']:.0f}", row["tmp bytes left"]]
        print("| " + " | ".join(str(v) for v in vals) + " |")
    print(f"median /healthz p95 over runs: {statistics.median(float(r['healthz p95 ms']) for r in rows):.1f} ms")  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
