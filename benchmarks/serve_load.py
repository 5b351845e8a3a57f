r"""Load on ``dreamgeo serve``: requests per second and p50 / p99 latency of
``GET /recommend?user=ID&k=K`` at 1, 8 and 32 concurrent clients, on this machine only.

A synthetic export (random float32 representations of ``--users`` users and ``--items``
items in ``--dim`` dimensions, ``--seen`` seen items per user, ``--index`` item index)
is written to a temporary folder, ``dreamgeo serve --export DIR`` is started with
uvicorn in a subprocess on a free port of 127.0.0.1, and a bounded asyncio client
(:mod:`httpx`) sends, for each concurrency, at most ``--requests`` requests for random
users within at most ``--duration`` seconds (after ``--warmup`` requests that are not
counted); the server is stopped at the end, whatever happens.

    python benchmarks/serve_load.py                          # 1, 8, 32 clients
    python benchmarks/serve_load.py --concurrency 1,8,32 --requests 3000 --duration 30
    python benchmarks/serve_load.py --index hnsw --items 200000
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_header, markdown_table  # noqa: E402

__all__ = ["main", "free_port", "load_run"]


def free_port() -> int:
    r"""A TCP port of 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def load_run(
    base_url: str, users: list[str], concurrency: int, requests: int, duration: float, k: int
) -> dict:
    r"""Sends at most :obj:`requests` ``GET /recommend`` requests from
    :obj:`concurrency` clients within :obj:`duration` seconds; returns the count,
    errors, wall time and latencies (seconds)."""
    import httpx

    latencies: list[float] = []
    errors = 0
    sent = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60.0) as client:
        start = time.perf_counter()
        deadline = start + duration

        async def one_client(seed: int) -> None:
            nonlocal errors, sent
            position = seed
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                user = users[(position * 7919) % len(users)]
                position += concurrency
                tic = time.perf_counter()
                answer = await client.get("/recommend", params={"user": user, "k": k})
                latencies.append(time.perf_counter() - tic)
                if answer.status_code != 200:
                    errors += 1

        await asyncio.gather(*(one_client(c) for c in range(concurrency)))
        wall = time.perf_counter() - start
    return {"done": len(latencies), "errors": errors, "wall": wall, "latencies": latencies}


def _versions() -> str:
    found = []
    for name in ("fastapi", "uvicorn", "httpx", "starlette", "pydantic"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    return ", ".join(found)


def _wait_until_up(base_url: str, server: subprocess.Popen, seconds: float = 120) -> None:
    import httpx

    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited with code {server.returncode}")
        try:
            if httpx.get(base_url + "/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the server did not answer /health within {seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seen", type=int, default=5)
    parser.add_argument("--index", choices=("flat", "ivf", "hnsw"), default="flat")
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--concurrency", default="1,8,32", help="clients, comma-separated")
    parser.add_argument("--requests", type=int, default=2000, help="most requests per level")
    parser.add_argument("--duration", type=float, default=30.0, help="most seconds per level")
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import numpy as np

    from dreamgeo.serve import export_arrays

    machine = machine_header("cpu")  # the load average at the start
    work = Path(tempfile.mkdtemp(prefix="serve-load-"))
    server = None
    try:
        rng = np.random.default_rng(args.seed)
        user_ids = np.char.add("u", np.arange(args.users).astype(str))
        seen = rng.integers(args.items, size=(args.users, args.seen))
        exported = export_arrays(
            rng.standard_normal((args.users, args.dim), dtype=np.float32),
            rng.standard_normal((args.items, args.dim), dtype=np.float32),
            np.stack([np.repeat(np.arange(args.users), args.seen), seen.ravel()]),
            user_ids,
            np.char.add("i", np.arange(args.items).astype(str)),
            index=args.index,
            info={"model": "synthetic"},
        )
        exported.save(work / "export")
        recall = exported.manifest["index"]["recall"]["value"]
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "dreamgeo.commands", "serve", "--export"]
        command += [str(work / "export"), "--port", str(port), "--log-level", "warning"]
        root = str(Path(__file__).resolve().parent.parent)
        environment = {
            **os.environ,
            "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
        }
        server = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL)
        _wait_until_up(base_url, server)
        users = user_ids.tolist()
        asyncio.run(load_run(base_url, users, 4, args.warmup, 60.0, args.k))
        rows = []
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            print(f"{concurrency} concurrent clients ...", file=sys.stderr)
            result = asyncio.run(
                load_run(base_url, users, concurrency, args.requests, args.duration, args.k)
            )
            latencies = result["latencies"]
            rows.append(
                [
                    concurrency,
                    result["done"],
                    result["errors"],
                    f"{result['wall']:.1f}",
                    f"{result['done'] / result['wall']:.0f}",
                    f"{1000 * statistics.median(latencies):.1f}",
                    f"{1000 * _percentile(latencies, 0.99):.1f}",
                ]
            )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"# dreamgeo serve under load: GET /recommend?user=ID&k={args.k}, {args.users:,} users, "
        f"{args.items:,} items, {args.dim}-d, {args.index} index (recall {recall:.3f}), one "
        f"uvicorn process, client and server on the same machine\n"
    )
    print(machine)
    print(f"serving: {_versions()}\n")
    header = ["clients", "requests", "errors", "wall s", "requests/s", "p50 ms", "p99 ms"]
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
