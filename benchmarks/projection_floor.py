r"""The floor of a DREAM training epoch: the dense work no implementation can skip,
the :math:`d_m \to d` projections of every modality (``Linear(d_m, 64)``), forward and
backward (the weight and bias gradients; the features need none), once per batch of an
epoch (as many batches as the BPR sampler makes at ``--batch-size``). Two floors:

* **all items**: every step projects all :math:`N` items. This is what DREAM needs:
  its modal line propagates every item's gated projection over the item–item graph
  and averages them to every user (``dreamgeo/nn/modal_encoder.py``), so each step
  uses all :math:`N` projections.
* **batch items**: every step projects only the batch's positive and negative items
  (``2B`` rows), the floor of a model whose modal line touched only its batch.

* **dense objective**: the all-items projections plus every other dense product of a
  DREAM step at the same shapes, as bare matrix products: for each of BMA's four InfoNCE
  terms the ``[B, d] @ [d, B]`` logits and the two ``[B, B] @ [B, d]`` products of their
  backward, and for each of the two S3 terms ``[d, B] @ [B, D]`` and ``[B, D] @ [D, d]``
  (``D`` = the summed feature dimensions). No softmax, gather, graph or optimizer work:
  the matrix-product floor of DREAM's objective as the paper defines it.

With ``--feature-dtype bfloat16`` the features are stored in ``bfloat16`` and projected
as DREAM does with that setting (``ModalEncoder.project``: weights cast to ``bfloat16``,
result and gradients back in ``float32``).

Run by ``run_all.py`` (table B); prints one JSON line.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit_result, synchronize  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="baby")
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--embedding-dim", type=int, default=64)
    parser.add_argument("--feature-dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args(argv)

    import torch

    from dreamgeo.commands import load_data
    from dreamgeo.datasets.schema import INTERACTS, ITEM, USER, feature_key, modality_names
    from dreamgeo.nn import ModalEncoder
    from dreamgeo.train import BPRSampler

    torch.manual_seed(0)
    device = torch.device(args.device)
    data, info = load_data(args.preset, args.data_root, args.preset)
    dtype = getattr(torch, args.feature_dtype)
    features = {m: data[ITEM][feature_key(m)].to(device, dtype) for m in modality_names(data)}
    sampler = BPRSampler(
        data[INTERACTS].edge_index.to(device),
        data[USER].num_nodes,
        data[ITEM].num_nodes,
        batch_size=args.batch_size,
        seed=0,
    )
    batch_items = [torch.cat([pos, neg]) for _, pos, neg in sampler.epoch()]
    projections = {
        m: ModalEncoder(x.size(1), args.embedding_dim, use_gate=False, use_graph=False).to(device)
        for m, x in features.items()
    }
    num_items = data[ITEM].num_nodes
    most_rows = max([num_items, *(rows.numel() for rows in batch_items)])
    upstream = torch.randn(most_rows, args.embedding_dim, device=device)

    def step(m: str, rows: torch.Tensor | None) -> None:
        projection = projections[m]
        projection.zero_grad(set_to_none=True)
        x = features[m] if rows is None else features[m].index_select(0, rows)
        out = projection.project(x)
        out.backward(upstream[: out.size(0)])

    def all_items_epoch() -> None:
        for _ in batch_items:
            for m in features:
                step(m, None)

    def batch_items_epoch() -> None:
        for rows in batch_items:
            for m in features:
                step(m, rows)

    batch, dim = args.batch_size, args.embedding_dim
    total_dim = sum(x.size(1) for x in features.values())
    anchor = torch.randn(batch, dim, device=device)
    positive = torch.randn(batch, dim, device=device)
    probs = torch.softmax(anchor @ positive.t(), dim=-1)
    factor = torch.randn(batch, total_dim, device=device).to(dtype)

    def dense_objective_epoch() -> None:
        for _ in batch_items:
            for m in features:
                step(m, None)
            for _ in range(4):  # BIA, MIA, inter-user, inter-item
                anchor @ positive.t()
                probs @ positive
                probs.t() @ anchor
            for _ in range(2):  # S3 of the users and of the items
                cross = anchor.t().to(dtype) @ factor
                factor @ cross.t()

    results = {}
    for name, epoch in (
        ("all_items", all_items_epoch),
        ("batch_items", batch_items_epoch),
        ("dense_objective", dense_objective_epoch),
    ):
        epoch()  # warm-up
        seconds = []
        for _ in range(max(1, args.repeats)):
            synchronize()
            tic = time.perf_counter()
            epoch()
            synchronize()
            seconds.append(time.perf_counter() - tic)
        results[name] = statistics.median(seconds)
    emit_result(
        {
            "data": info,
            "feature_dtype": args.feature_dtype,
            "steps": len(batch_items),
            "num_items": num_items,
            "dims": {m: int(x.size(1)) for m, x in features.items()},
            "all_items_seconds": results["all_items"],
            "batch_items_seconds": results["batch_items"],
            "dense_objective_seconds": results["dense_objective"],
            "rows_per_batch": int(sum(r.numel() for r in batch_items) / max(1, len(batch_items))),
        }
    )


if __name__ == "__main__":
    main()
