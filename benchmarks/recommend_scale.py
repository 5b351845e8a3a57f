r"""``dreamgeo recommend`` for every user of a synthetic export at scale: wall time and
peak RSS per (users, chunk), each run in a fresh process, to show that peak memory
grows with the chunk (``--batch-size``), not with the number of users.

The synthetic catalogue: random float32 representations (standard normal) of
``--items`` items and of each user count in ``--users``, ``--dim`` dimensions, every
user with ``--seen`` random seen items, original ids ``u<index>`` / ``i<index>``,
exported with a flat index (``dreamgeo.serve.export_arrays``); then ``dreamgeo recommend
--export DIR --output FILE --top-k K --batch-size B`` (exact chunked matmul) writes
every user's top-K to a temporary file, removed after the run.

    python benchmarks/recommend_scale.py                       # 250k and 1M users x 100k items
    python benchmarks/recommend_scale.py --users 250000,1000000 --batch-sizes 1024,4096
    python benchmarks/recommend_scale.py --quick                # 20k and 80k users x 5k items

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of the recommend process;
``RSS after imports`` is the same reading before the export is opened (torch, faiss and
numpy alone), so the difference is what the run itself held.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit_result, machine_header, markdown_table, peak_rss_mb, run_worker  # noqa: E402

__all__ = ["main", "make_export"]


def make_export(out: Path, num_users: int, num_items: int, dim: int, seen: int, seed: int) -> dict:
    r"""Writes the synthetic export of :obj:`num_users` users to :obj:`out`."""
    import numpy as np

    from dreamgeo.serve import export_arrays

    rng = np.random.default_rng(seed)
    items = rng.standard_normal((num_items, dim), dtype=np.float32)
    users = np.random.default_rng(seed + num_users).standard_normal(
        (num_users, dim), dtype=np.float32
    )
    seen_items = rng.integers(num_items, size=(num_users, seen))
    edge_index = np.stack([np.repeat(np.arange(num_users), seen), seen_items.ravel()])
    tic = time.perf_counter()
    exported = export_arrays(
        users,
        items,
        edge_index,
        np.char.add("u", np.arange(num_users).astype(str)),
        np.char.add("i", np.arange(num_items).astype(str)),
        info={"model": "synthetic"},
    )
    exported.save(out, overwrite=True)
    return {"export_seconds": time.perf_counter() - tic}


def _worker_make(args: argparse.Namespace) -> None:
    emit_result(
        make_export(Path(args.out), args.num_users, args.items, args.dim, args.seen, args.seed)
    )


def _worker_run(args: argparse.Namespace) -> None:
    import faiss  # noqa: F401 - imported before the baseline reading, as recommend does
    import numpy  # noqa: F401
    import torch  # noqa: F401

    from dreamgeo.commands.main import main as dreamgeo_main

    baseline = peak_rss_mb()
    tic = time.perf_counter()
    code = dreamgeo_main(
        [
            "recommend",
            "--export",
            args.out,
            "--output",
            args.output,
            "--top-k",
            str(args.top_k),
            "--batch-size",
            str(args.batch_size),
            "--format",
            args.format,
        ]
    )
    seconds = time.perf_counter() - tic
    size = Path(args.output).stat().st_size
    Path(args.output).unlink()
    emit_result(
        {
            "code": code,
            "seconds": seconds,
            "rss_mb": peak_rss_mb(),
            "baseline_mb": baseline,
            "output_mb": size / 2**20,
        }
    )


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", default="250000,1000000", help="user counts, comma-separated")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--seen", type=int, default=5, help="seen items per user")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--batch-sizes", default="1024", help="chunks, comma-separated")
    parser.add_argument("--format", default="tsv", choices=("tsv", "csv", "jsonl", "parquet"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=None, help="where the exports go (a temp folder)")
    parser.add_argument("--quick", action="store_true", help="20k and 80k users x 5k items")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds per worker")
    parser.add_argument("--worker", choices=("make", "run"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--num-users", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--batch-size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.items = "20000,80000", 5000
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.worker == "make":
        _worker_make(args)
        return 0
    if args.worker == "run":
        _worker_run(args)
        return 0
    script = Path(__file__).resolve()
    counts = [int(u) for u in args.users.split(",")]
    chunks = [int(b) for b in args.batch_sizes.split(",")]
    common = ["--items", str(args.items), "--dim", str(args.dim), "--seen", str(args.seen)]
    common += ["--seed", str(args.seed), "--top-k", str(args.top_k), "--format", args.format]
    rows = []
    machine = machine_header("cpu")  # the load average at the start
    work = Path(tempfile.mkdtemp(prefix="recommend-scale-", dir=args.workdir))
    try:
        for num_users in counts:
            out = work / f"export-{num_users}"
            made = run_worker(
                script,
                ["--worker", "make", "--num-users", str(num_users), "--out", str(out), *common],
                timeout=args.timeout,
            )
            if "error" in made:
                print(f"export of {num_users} users failed: {made['error']}", file=sys.stderr)
                return 1
            for batch_size in chunks:
                print(f"recommend: {num_users} users, chunk {batch_size} ...", file=sys.stderr)
                result = run_worker(
                    script,
                    [
                        "--worker",
                        "run",
                        "--out",
                        str(out),
                        "--output",
                        str(work / "recs"),
                        "--batch-size",
                        str(batch_size),
                        *common,
                    ],
                    timeout=args.timeout,
                )
                if "error" in result:
                    rows.append([f"{num_users:,}", f"{args.items:,}", batch_size, result["error"]])
                    continue
                rows.append(
                    [
                        f"{num_users:,}",
                        f"{args.items:,}",
                        args.dim,
                        batch_size,
                        f"{result['seconds']:.1f}",
                        f"{num_users / result['seconds']:,.0f}",
                        f"{result['baseline_mb']:.0f}",
                        f"{result['rss_mb']:.0f}",
                        f"{result['rss_mb'] - result['baseline_mb']:.0f}",
                        f"{result['output_mb']:.0f}",
                    ]
                )
            shutil.rmtree(out, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    header = ["users", "items", "dim", "chunk", "wall s", "users/s", "RSS after imports MB"]
    header += ["peak RSS MB", "peak - imports MB", f"output MB ({args.format})"]
    print(f"# dreamgeo recommend at scale (top-{args.top_k}, {args.seen} seen items per user)\n")
    print(machine + "\n")
    print(markdown_table(header, rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
