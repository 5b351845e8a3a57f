r"""Names and small accessors for the one :class:`~torch_geometric.data.HeteroData`
that every part of dreamgeo shares (``DESIGN.md`` section 2).

=====================================================  ==========================================
key                                                    content
=====================================================  ==========================================
``data['user'].num_nodes``, ``data['item'].num_nodes``  :math:`M` users, :math:`N` items
``data['item'].x_<m>``                                  raw item features of modality ``m``,
                                                        float32 ``[N, d_m]``
``data['user', 'interacts', 'item'].edge_index``        training interactions ``[2, E]``
                                                        (row 0 user, row 1 item)
``... .val_edge_index``, ``... .test_edge_index``       held-out interactions
``data['item', 'sim_<m>', 'item']``, ``data['user',     modal relation graphs: ``edge_index`` and
'sim_<m>', 'user']``                                    normalized ``edge_weight``
=====================================================  ==========================================
"""

from __future__ import annotations

from torch import Tensor
from torch_geometric.data import HeteroData

__all__ = [
    "USER",
    "ITEM",
    "INTERACTS",
    "feature_key",
    "similarity_edge_type",
    "modality_names",
    "train_edge_index",
]

USER: str = "user"
ITEM: str = "item"
INTERACTS: tuple[str, str, str] = (USER, "interacts", ITEM)


def feature_key(modality: str) -> str:
    r"""The attribute of ``data['item']`` that holds the raw features of
    ``modality`` (``"image"`` → ``"x_image"``)."""
    return f"x_{modality}"


def similarity_edge_type(node_type: str, modality: str) -> tuple[str, str, str]:
    r"""The edge type of the modal relation graph of ``modality`` among
    ``node_type`` nodes, e.g. ``('item', 'sim_image', 'item')``."""
    return (node_type, f"sim_{modality}", node_type)


def modality_names(data: HeteroData) -> list[str]:
    r"""The modalities stored in ``data``, in insertion order (``x_image`` and
    ``x_text`` give ``['image', 'text']``)."""
    return [key[2:] for key in data[ITEM].keys() if key.startswith("x_")]


def train_edge_index(data: HeteroData) -> Tensor:
    r"""The training interactions ``[2, E]`` (row 0 users, row 1 items)."""
    return data[INTERACTS].edge_index
