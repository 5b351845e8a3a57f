r"""Any user's :class:`~torch_geometric.data.HeteroData` in dreamgeo's schema, checked and
copied, so that models accept PyG graphs with their own node, edge and feature names and
never write into the caller's object."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.checks import check_count, check_edge_index, check_features
from dreamgeo.datasets.schema import INTERACTS, ITEM, USER, feature_key, similarity_edge_type

__all__ = ["canonical_hetero", "HELD_OUT_KEYS"]

#: Attributes of the interaction edge type that hold held-out interactions.
HELD_OUT_KEYS: tuple[str, ...] = ("val_edge_index", "test_edge_index")


def canonical_hetero(
    data: HeteroData,
    edge_type: tuple[str, str, str] | None = None,
    modalities: Mapping[str, str] | Sequence[str] | None = None,
    owner: str = "dreamgeo",
) -> HeteroData:
    r"""A new :class:`~torch_geometric.data.HeteroData` in dreamgeo's schema
    (``DESIGN.md`` section 2) built from ``data``, whose names may be anything: the
    source node type of :obj:`edge_type` becomes ``"user"``, its target ``"item"``, the
    interactions ``('user', 'interacts', 'item')`` and each modality's feature attribute
    ``x_<modality>``. Tensors are shared, never copied or modified; relation graphs
    ``(t, 'sim_<m>', t)`` stored in ``data`` come along. Node counts are read from
    ``num_nodes`` where set, else from the feature rows (items), else from the largest id
    in the interactions.

    Every id, feature shape and feature value is checked here, so a bad graph fails with
    a :class:`ValueError` naming the tensor before any native code sees it.

    Args:
        data (HeteroData): The user's graph.
        edge_type (tuple[str, str, str], optional): The interaction edge type (user to
            item). (default: :obj:`None`: ``('user', 'interacts', 'item')`` when present,
            else the only edge type between two different node types)
        modalities (Mapping[str, str] or Sequence[str], optional): Modality name to the
            item attribute holding its features (e.g. ``{"image": "x_img"}``), or
            modality names whose attributes are ``x_<name>``. (default: :obj:`None`:
            every item attribute ``x_<name>``)
        owner (str, optional): The caller, named in error messages.
            (default: :obj:`"dreamgeo"`)
    """
    if not isinstance(data, HeteroData):
        raise ValueError(f"{owner}: expected a HeteroData, got {type(data).__name__}")
    edge_type = _interaction_edge_type(data, edge_type, owner)
    src, _, dst = edge_type
    store = data[edge_type]
    if "edge_index" not in store:
        raise ValueError(f"{owner}: data[{edge_type}] has no edge_index (the interactions)")
    item_store = data[dst]
    attributes = _modality_attributes(item_store, modalities, dst, owner)

    num_items = _explicit_count(data, dst, owner)
    if num_items is None and attributes:
        num_items = item_store[next(iter(attributes.values()))].size(0)
    interactions = [store[key] for key in ("edge_index", *HELD_OUT_KEYS) if key in store]
    for index in interactions:
        if not isinstance(index, Tensor) or index.dim() != 2 or index.size(0) != 2:
            raise ValueError(f"{owner}: data[{edge_type}] interactions must be [2, E] tensors")
    num_users = _explicit_count(data, src, owner)
    if num_users is None:
        num_users = max((int(i[0].max()) + 1 for i in interactions if i.numel()), default=0)
    if num_items is None:
        num_items = max((int(i[1].max()) + 1 for i in interactions if i.numel()), default=0)
    num_users = check_count(num_users, f"data['{src}'].num_nodes", owner)
    num_items = check_count(num_items, f"data['{dst}'].num_nodes", owner)

    out = HeteroData()
    out[USER].num_nodes = num_users
    out[ITEM].num_nodes = num_items
    for key in ("edge_index", *HELD_OUT_KEYS):
        if key in store:
            name = f"data[{edge_type}].{key}"
            out[INTERACTS][key] = check_edge_index(
                store[key], num_users, num_items, name, owner, allow_empty=key != "edge_index"
            )
    for modality, attribute in attributes.items():
        out[ITEM][feature_key(modality)] = check_features(
            item_store[attribute], num_items, f"data['{dst}'].{attribute}", owner
        )
    for node_type, new_type, count in ((src, USER, num_users), (dst, ITEM, num_items)):
        for modality in attributes:
            graph_type = (node_type, f"sim_{modality}", node_type)
            if graph_type not in data.edge_types:
                continue
            graph, target = data[graph_type], out[similarity_edge_type(new_type, modality)]
            target.edge_index = check_edge_index(
                graph.edge_index, count, count, f"data[{graph_type}].edge_index", owner
            )
            for key in ("edge_weight", "knn_k"):
                if key in graph:
                    target[key] = graph[key]
    return out


def _interaction_edge_type(
    data: HeteroData, edge_type: tuple[str, str, str] | None, owner: str
) -> tuple[str, str, str]:
    if edge_type is not None:
        edge_type = tuple(edge_type)
        if edge_type not in data.edge_types:
            raise ValueError(
                f"{owner}: the data has no edge type {edge_type}; it has {data.edge_types}"
            )
        return edge_type
    if INTERACTS in data.edge_types:
        return INTERACTS
    bipartite = [et for et in data.edge_types if et[0] != et[2]]
    if len(bipartite) == 1:
        return bipartite[0]
    raise ValueError(
        f"{owner}: name the user-item interaction edge type with edge_type=(src, rel, dst); "
        f"the data has {data.edge_types}"
    )


def _modality_attributes(
    item_store, modalities: Mapping[str, str] | Sequence[str] | None, node_type: str, owner: str
) -> dict[str, str]:
    if modalities is None:
        return {key[2:]: key for key in item_store.keys() if key.startswith("x_")}
    if isinstance(modalities, str):
        modalities = [modalities]
    if not isinstance(modalities, Mapping):
        modalities = {m: feature_key(m) for m in modalities}
    found = list(item_store.keys())
    for modality, attribute in modalities.items():
        if attribute not in item_store:
            raise ValueError(
                f"{owner}: modality '{modality}' names data['{node_type}'].{attribute}, "
                f"which does not exist; data['{node_type}'] has {found}"
            )
    return dict(modalities)


def _explicit_count(data: HeteroData, node_type: str, owner: str) -> int | None:
    if node_type not in data.node_types or "num_nodes" not in data[node_type]:
        return None
    value = data[node_type]["num_nodes"]
    return None if value is None else check_count(value, f"data['{node_type}'].num_nodes", owner)
