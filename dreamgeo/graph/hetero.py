r"""Builders of DREAM's modal relation graphs on the shared
:class:`~torch_geometric.data.HeteroData` (``DESIGN.md`` sections 2, 3.3 and 7).

For every modality :math:`m`, items get the graph :math:`\tilde{\mathbf{S}}_m` built
from their raw features :math:`\mathbf{x}_m^i`, and users the graph
:math:`\tilde{\mathbf{J}}_m` built from the mean features of their training items
:math:`\mathbf{x}_m^u`. Graphs are cached on disk, keyed by a SHA-256 of everything
they depend on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch_geometric.data import HeteroData
from tqdm.auto import tqdm

from dreamgeo.datasets.schema import (
    ITEM,
    USER,
    feature_key,
    modality_names,
    similarity_edge_type,
    train_edge_index,
)
from dreamgeo.graph.knn import knn_graph_cosine
from dreamgeo.graph.normalize import NORMALIZATION_VERSION, symmetric_normalize

__all__ = [
    "user_mean_features",
    "build_relation_graphs",
    "relation_graph_adjacency",
]

logger = logging.getLogger(__name__)

_HASH_CHUNK_BYTES = 64 << 20
_CACHE_FORMAT = "dreamgeo-relation-graph-v1"


def _deduplicated_training_pairs(data: HeteroData) -> tuple[Tensor, Tensor]:
    r"""The distinct training ``(user, item)`` pairs sorted by user, then item."""
    num_users, num_items = data[USER].num_nodes, data[ITEM].num_nodes
    edge_index = train_edge_index(data).long().cpu()
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(
            f"data['user', 'interacts', 'item'].edge_index must have shape [2, E], "
            f"got {tuple(edge_index.shape)}"
        )
    user, item = edge_index
    if edge_index.numel() and (
        int(user.min()) < 0
        or int(user.max()) >= num_users
        or int(item.min()) < 0
        or int(item.max()) >= num_items
    ):
        raise ValueError(
            f"data['user', 'interacts', 'item'].edge_index refers to users or items "
            f"outside [0, {num_users}) x [0, {num_items})"
        )
    pair = torch.unique(user * num_items + item)  # sorted, so grouped by user
    return pair // num_items, pair % num_items


def user_mean_features(data: HeteroData, modality: str, chunk_size: int = 8192) -> Tensor:
    r"""Modal features of users: the mean of the features of their *training* items,

    .. math::
        \mathbf{x}_m^u = \frac{1}{|\mathcal{I}_u|} \sum_{i \in \mathcal{I}_u}
        \mathbf{x}_m^i,

    with :math:`\mathcal{I}_u` the distinct items of ``data['user', 'interacts',
    'item'].edge_index`` (validation and test interactions are never read). Computed
    as a sparse CSR mean operator times the item features, one chunk of users at a
    time, so the only large allocation is the output. Users without training items get
    zeros.

    Args:
        data (torch_geometric.data.HeteroData): The dataset (schema of
            :mod:`dreamgeo.datasets.schema`).
        modality (str): The modality :math:`m` (reads ``data['item'].x_<m>``).
        chunk_size (int, optional): Users per sparse product. (default: ``8192``)

    Shapes:
        - **input:** ``data['item'].x_<m>`` ``[N, d_m]``
        - **output:** ``[M, d_m]``
    """
    x = _item_features(data, modality)
    num_users, num_items = data[USER].num_nodes, data[ITEM].num_nodes
    user, item = _deduplicated_training_pairs(data)
    count = torch.bincount(user, minlength=num_users)
    crow = torch.zeros(num_users + 1, dtype=torch.long)
    torch.cumsum(count, dim=0, out=crow[1:])
    value = (1.0 / count.clamp(min=1).to(torch.float64))[user].to(x.dtype)

    out = torch.empty(num_users, x.size(1), dtype=x.dtype, device=x.device)
    for start in range(0, num_users, chunk_size):
        stop = min(start + chunk_size, num_users)
        first, last = int(crow[start]), int(crow[stop])
        mean_operator = torch.sparse_csr_tensor(
            crow[start : stop + 1] - first,
            item[first:last],
            value[first:last],
            size=(stop - start, num_items),
        ).to(x.device)
        out[start:stop] = mean_operator @ x
    return out


def _item_features(data: HeteroData, modality: str) -> Tensor:
    key = feature_key(modality)
    if key not in data[ITEM]:
        raise ValueError(
            f"data['item'] has no features '{key}'; available modalities: {modality_names(data)}"
        )
    x = data[ITEM][key]
    if x.dim() != 2 or x.size(0) != data[ITEM].num_nodes:
        raise ValueError(
            f"data['item'].{key} must have shape [num_items={data[ITEM].num_nodes}, d], "
            f"got {tuple(x.shape)}"
        )
    return x


def _update_hash(digest: hashlib._Hash, tensor: Tensor) -> None:
    r"""Feeds dtype, shape and raw bytes of ``tensor`` to ``digest``, a chunk of rows at
    a time (no full copy of a contiguous tensor, even on the GPU)."""
    digest.update(f"{tensor.dtype}|{tuple(tensor.shape)}|".encode())
    if tensor.numel() == 0:
        return
    rows = tensor.detach().reshape(tensor.size(0) if tensor.dim() else 1, -1)
    row_bytes = rows.size(1) * rows.element_size()
    rows_per_chunk = max(1, _HASH_CHUNK_BYTES // row_bytes)
    for start in range(0, rows.size(0), rows_per_chunk):
        chunk = rows[start : start + rows_per_chunk].contiguous().cpu()
        digest.update(chunk.view(torch.uint8).numpy().data)


def _feature_digest(tensor: Tensor) -> str:
    digest = hashlib.sha256()
    _update_hash(digest, tensor)
    return digest.hexdigest()


def _cache_key(
    node_type: str,
    modality: str,
    num_nodes: int,
    source_digests: dict[str, str],
    k: int,
    mode: str,
    nlist: int | None,
    nprobe: int | None,
    backend: str = "faiss",
) -> str:
    # exact search gives the same graph with every backend, so exact keys leave it out
    # (and stay those of earlier caches); approximate graphs depend on the engine
    engine = {"ivf_backend": backend} if mode == "ivf" else {}
    return json.dumps(
        {
            **engine,
            "format": _CACHE_FORMAT,
            "node_type": node_type,
            "modality": modality,
            "num_nodes": num_nodes,
            "sources": source_digests,
            "k": k,
            "mode": mode,
            "nlist": nlist if mode == "ivf" else None,
            "nprobe": nprobe if mode == "ivf" else None,
            "normalization": NORMALIZATION_VERSION,
        },
        sort_keys=True,
    )


def _cache_path(cache_dir: Path, node_type: str, modality: str, key: str) -> Path:
    safe_modality = re.sub(r"[^A-Za-z0-9_.-]", "_", modality)
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return cache_dir / f"{node_type}_sim_{safe_modality}_{digest}.pt"


def _load_cached(path: Path, key: str, num_nodes: int) -> tuple[Tensor, Tensor] | None:
    r"""The cached ``(edge_index, edge_weight)`` at ``path``, or ``None`` when it is
    missing, unreadable or inconsistent (logged, so that the caller rebuilds)."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # any unreadable file is rebuilt, never fatal
        logger.warning("Relation graph cache %s is unreadable (%s); rebuilding", path, error)
        return None
    fault = None
    if not isinstance(payload, dict) or payload.get("key") != key:
        fault = "its key does not match"
    else:
        edge_index, edge_weight = payload.get("edge_index"), payload.get("edge_weight")
        if not isinstance(edge_index, Tensor) or not isinstance(edge_weight, Tensor):
            fault = "edge_index or edge_weight is missing"
        elif edge_index.dtype != torch.long or edge_index.dim() != 2 or edge_index.size(0) != 2:
            fault = f"edge_index has shape {tuple(edge_index.shape)}"
        elif edge_weight.shape != (edge_index.size(1),) or not edge_weight.is_floating_point():
            fault = f"edge_weight has shape {tuple(edge_weight.shape)}"
        elif num_nodes > 0 and (
            edge_index.size(1) < num_nodes
            or int(edge_index.min()) < 0
            or int(edge_index.max()) >= num_nodes
        ):
            fault = f"edge_index does not fit {num_nodes} nodes"
    if fault is not None:
        logger.warning("Relation graph cache %s is corrupt (%s); rebuilding", path, fault)
        return None
    return edge_index, edge_weight


def _save_atomically(path: Path, payload: dict) -> None:
    r"""Writes ``payload`` to a temporary file next to ``path``, then renames it over
    ``path``, so that readers never see a half-written cache."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(payload, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def build_relation_graphs(
    data: HeteroData,
    k: int = 10,
    node_types: Sequence[str] = (ITEM, USER),
    modalities: Sequence[str] | None = None,
    mode: str = "exact",
    cache_dir: str | os.PathLike | None = None,
    *,
    nlist: int | None = None,
    nprobe: int | None = None,
    chunk_size: int = 16384,
    device: str | int | torch.device | None = None,
    backend: str = "faiss",
) -> HeteroData:
    r"""Builds the modal relation graphs of DREAM (Eq. 5–6) and stores them in
    :obj:`data` as ``data[(node, 'sim_<m>', node)].edge_index`` and ``.edge_weight``.

    For every modality :math:`m` and node type, the cosine top-:math:`k` graph
    (:func:`~dreamgeo.graph.knn_graph_cosine`, self included, unweighted) of the item
    features :math:`\mathbf{x}_m^i` or the user mean features
    :math:`\mathbf{x}_m^u` (:func:`user_mean_features`) is normalized
    (:func:`~dreamgeo.graph.symmetric_normalize`):

    .. math::
        \tilde{\mathbf{S}}_m = \mathbf{D}^{-1/2} \hat{\mathbf{S}}_m
        \mathbf{D}^{-1/2}, \qquad \hat{\mathbf{S}}_{m, ij} = \mathbb{1}[j \in
        \mathcal{N}_k(i)].

    Row 0 of ``edge_index`` is the node :math:`i` whose neighbours are row 1, so
    propagation is :math:`\bar{\mathbf{e}}_i = \sum_j \tilde{S}_{ij} \mathbf{e}_j`
    (see :func:`relation_graph_adjacency`).

    With :obj:`cache_dir`, every graph is saved there under a SHA-256 of the features
    it is built from (for users: the item features, the training ``edge_index`` and the
    number of users), :math:`k`, the search mode and the normalization version; a
    later call with the same inputs loads it instead of searching. Writes are atomic;
    unreadable or inconsistent cache files are logged and rebuilt.

    Args:
        data (torch_geometric.data.HeteroData): The dataset; modified in place.
        k (int, optional): Neighbours per node, self included. (default: ``10``)
        node_types (Sequence[str], optional): Any of ``"item"``, ``"user"``.
            (default: ``("item", "user")``)
        modalities (Sequence[str], optional): Modalities to build; ``None`` takes all
            of :func:`~dreamgeo.datasets.schema.modality_names`. (default: ``None``)
        mode (str, optional): ``"exact"`` or ``"ivf"`` FAISS search.
            (default: ``"exact"``)
        cache_dir (str or os.PathLike, optional): Cache folder, created when missing;
            ``None`` disables caching. (default: ``None``)
        nlist (int, optional): IVF lists (see :func:`knn_graph_cosine`).
            (default: ``None``)
        nprobe (int, optional): IVF lists probed. (default: ``None``)
        chunk_size (int, optional): Rows per search chunk. (default: ``16384``)
        device (str or int or torch.device, optional): Search device (see
            :func:`knn_graph_cosine`). (default: ``None``)
        backend (str, optional): ``"faiss"``, ``"torch"`` (exact only) or
            ``"torch_ivf"`` (IVF only; see :func:`knn_graph_cosine`). Exact search gives
            the same graph with every backend, so only IVF graphs key their cache on it.
            (default: ``"faiss"``)

    Shapes:
        - **output:** for each built ``(node, m)``: ``edge_index`` ``[2, n * k]``
          (fewer when some rows are all-zero), ``edge_weight`` ``[n * k]`` float32

    Returns:
        torch_geometric.data.HeteroData: :obj:`data` itself.
    """
    if k <= 0:
        raise ValueError(f"build_relation_graphs: k must be positive, got {k}")
    if mode not in ("exact", "ivf"):
        raise ValueError(f"build_relation_graphs: mode must be 'exact' or 'ivf', got '{mode}'")
    unknown_types = [t for t in node_types if t not in (ITEM, USER)]
    if unknown_types:
        raise ValueError(
            f"build_relation_graphs: node_types must be '{ITEM}' or '{USER}', got {unknown_types}"
        )
    available = modality_names(data)
    modalities = list(available if modalities is None else modalities)
    unknown = [m for m in modalities if m not in available]
    if unknown:
        raise ValueError(
            f"build_relation_graphs: modalities {unknown} have no item features; "
            f"available: {available}"
        )
    cache_path_dir = Path(cache_dir) if cache_dir is not None else None

    item_digests: dict[str, str] = {}
    train_digest: str | None = None
    steps = [(m, node_type) for m in modalities for node_type in node_types]
    for m, node_type in tqdm(steps, desc="relation graphs", disable=None):
        started = time.perf_counter()
        num_nodes = int(data[node_type].num_nodes)
        x_item = _item_features(data, m)

        path = key = None
        if cache_path_dir is not None:
            if m not in item_digests:
                item_digests[m] = _feature_digest(x_item)
            sources = {"item_features": item_digests[m]}
            if node_type == USER:
                if train_digest is None:
                    train_digest = _feature_digest(train_edge_index(data).long())
                sources["train_edge_index"] = train_digest
            key = _cache_key(node_type, m, num_nodes, sources, k, mode, nlist, nprobe, backend)
            path = _cache_path(cache_path_dir, node_type, m, key)
            cached = _load_cached(path, key, num_nodes)
            if cached is not None:
                _store(data, node_type, m, *cached, k)
                logger.info(
                    "%s graph of %s: loaded %s in %.2fs",
                    m,
                    node_type,
                    path,
                    time.perf_counter() - started,
                )
                continue

        features = x_item if node_type == ITEM else user_mean_features(data, m)
        edge_index = knn_graph_cosine(
            features,
            k,
            mode=mode,
            nlist=nlist,
            nprobe=nprobe,
            chunk_size=chunk_size,
            device=device,
            backend=backend,
        )
        del features
        edge_weight = symmetric_normalize(edge_index, num_nodes).to(torch.float32)
        _store(data, node_type, m, edge_index, edge_weight, k)
        if path is not None:
            _save_atomically(
                path, {"key": key, "edge_index": edge_index, "edge_weight": edge_weight}
            )
        logger.info(
            "%s graph of %s: %d nodes, k=%d, %s search in %.2fs",
            m,
            node_type,
            num_nodes,
            k,
            mode,
            time.perf_counter() - started,
        )
    return data


def _store(
    data: HeteroData,
    node_type: str,
    modality: str,
    edge_index: Tensor,
    edge_weight: Tensor,
    k: int,
) -> None:
    store = data[similarity_edge_type(node_type, modality)]
    store.edge_index = edge_index
    store.edge_weight = edge_weight
    store.knn_k = k


def relation_graph_adjacency(data: HeteroData, node_type: str, modality: str) -> Tensor:
    r"""The stored relation graph of ``modality`` among ``node_type`` nodes as a
    sparse CSR matrix :math:`\tilde{\mathbf{S}}` with
    :math:`\tilde{S}_{ij} = \tilde{w}_{ij}` for every edge ``(i, j)`` of ``edge_index``
    (row 0 :math:`i`, row 1 :math:`j`), so that ``adjacency @ x`` propagates

    .. math::
        \mathbf{x}'_i = \sum_{j \in \mathcal{N}_k(i)} \tilde{w}_{ij} \mathbf{x}_j.

    Args:
        data (torch_geometric.data.HeteroData): Data holding the graph
            (:func:`build_relation_graphs`).
        node_type (str): ``"item"`` or ``"user"``.
        modality (str): The modality :math:`m`.

    Shapes:
        - **output:** sparse CSR ``[n, n]``
    """
    edge_type = similarity_edge_type(node_type, modality)
    if edge_type not in data.edge_types or "edge_index" not in data[edge_type]:
        raise ValueError(
            f"data has no relation graph {edge_type}; call build_relation_graphs first"
        )
    store = data[edge_type]
    num_nodes = int(data[node_type].num_nodes)
    edge_weight = store.get("edge_weight")
    if edge_weight is None:
        raise ValueError(f"data[{edge_type}] has no edge_weight")
    adjacency = torch.sparse_coo_tensor(
        store.edge_index, edge_weight, (num_nodes, num_nodes)
    ).coalesce()
    return adjacency.to_sparse_csr()
