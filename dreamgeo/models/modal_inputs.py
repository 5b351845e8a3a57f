r"""What the multimodal baselines read from the data: raw item features (frozen or
fine-tuned), item–item top-:math:`k` graphs and the user mean operator."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from torch import Tensor
from torch_geometric.data import HeteroData

from dreamgeo.datasets.schema import ITEM, feature_key, modality_names, similarity_edge_type
from dreamgeo.graph import build_relation_graphs, knn_graph_cosine, symmetric_normalize
from dreamgeo.hparams import HParam
from dreamgeo.nn.conv import propagate_layers
from dreamgeo.nn.modal_line import check_modality_weights, modality_weights
from dreamgeo.nn.sparse import SparseOperator, user_mean_operator

__all__ = [
    "ItemFeatures",
    "item_features",
    "item_knn_graph",
    "weighted_graph_sum",
    "user_mean_operator",
    "propagate_layers",
    "check_modality_weights",
    "image_text_weights",
    "ITEM_KNN_K",
    "UI_LAYERS",
    "NEGATIVE_CANDIDATES",
    "ITEM_BIAS",
]

log = logging.getLogger(__name__)

#: The declaration shared by the models with item-item k-NN graphs (FREEDOM, MGCN,
#: LATTICE; MMRec's ``knn_k``).
ITEM_KNN_K = HParam("knn_k", int, 10, "neighbours per item in the item-item graphs", low=1)
#: The user-item graph depth of FREEDOM and MGCN (MMRec's ``n_ui_layers``).
UI_LAYERS = HParam("num_layers", int, 2, "user-item graph layers", low=1, aliases=("n_ui_layers",))
#: Dynamic negative sampling (:class:`~dreamgeo.nn.DynamicNegativeSampling`), an option
#: beyond the papers of the models that declare it (DREAM, MGCN).
NEGATIVE_CANDIDATES = HParam(
    "negative_candidates",
    int,
    1,
    "K: the BPR negative is the highest-scored of K uniform non-interacted items (dynamic "
    "negative sampling; 1 = the uniform negative of the paper's BPR; beyond the paper)",
    low=1,
)
#: A learned item bias in every score (:class:`~dreamgeo.nn.ItemBias`), an option beyond
#: the papers of the models that declare it (DREAM, MGCN).
ITEM_BIAS = HParam(
    "item_bias",
    bool,
    False,
    "add a learned item bias b_i to every score (BPR-MF's; beyond the paper)",
)


def item_features(data: HeteroData, model: str) -> dict[str, Tensor]:
    r"""The raw item features ``data['item'].x_<m>`` of every modality, in the data's
    order, as float32 ``[N, d_m]`` tensors.

    Args:
        data (HeteroData): The dataset.
        model (str): Name of the calling model, for error messages.
    """
    modalities = modality_names(data)
    if not modalities:
        raise ValueError(f"{model} needs at least one modality (data['item'].x_<m>), found none")
    num_items = data[ITEM].num_nodes
    features = {}
    for m in modalities:
        x = data[ITEM][feature_key(m)]
        if x.dim() != 2 or x.size(0) != num_items:
            raise ValueError(
                f"{model}: data['item'].{feature_key(m)} must have shape "
                f"[num_items={num_items}, d], got {tuple(x.shape)}"
            )
        features[m] = x.float()
    return features


class ItemFeatures(torch.nn.Module):
    r"""Raw item features of every modality, held either as buffers (frozen) or as
    parameters initialized with the features and fine-tuned with the model (what MMRec's
    BM3, FREEDOM and MGCN do with ``nn.Embedding.from_pretrained(..., freeze=False)``).

    Args:
        features (Mapping[str, torch.Tensor]): Modality name to ``[N, d_m]`` features.
        trainable (bool, optional): Fine-tune the features. (default: :obj:`True`)

    Shapes:
        - **output:** ``self[m]`` is ``[N, d_m]``
    """

    def __init__(self, features: Mapping[str, Tensor], trainable: bool = True):
        super().__init__()
        self.modalities: list[str] = list(features)
        self.trainable = trainable
        for m, x in features.items():
            x = x.detach().float().clone()
            if trainable:
                self.register_parameter(f"x_{m}", torch.nn.Parameter(x))
            else:
                self.register_buffer(f"x_{m}", x, persistent=False)

    def __getitem__(self, modality: str) -> Tensor:
        return getattr(self, f"x_{modality}")

    def dims(self) -> dict[str, int]:
        r"""Feature size :math:`d_m` of every modality."""
        return {m: self[m].size(1) for m in self.modalities}

    def extra_repr(self) -> str:
        return f"dims={self.dims()}, trainable={self.trainable}"


def _stored_graph_matches(data: HeteroData, modality: str, k: int) -> bool:
    edge_type = similarity_edge_type(ITEM, modality)
    if edge_type not in data.edge_types:
        return False
    store = data[edge_type]
    if "edge_index" not in store or "edge_weight" not in store:
        return False
    num_items = data[ITEM].num_nodes
    per_row = torch.bincount(store.edge_index[0], minlength=num_items)
    return int(per_row.max()) == min(k, num_items)


def item_knn_graph(
    data: HeteroData,
    modality: str,
    k: int,
    weighted: bool = False,
    mode: str = "exact",
    cache_dir: str | None = None,
    backend: str = "faiss",
) -> tuple[Tensor, Tensor]:
    r"""The normalized item–item top-:math:`k` cosine graph of ``modality``'s raw
    features (self included), :math:`\tilde{\mathbf{S}} = \mathbf{D}^{-1/2}
    \mathbf{S}\mathbf{D}^{-1/2}` with :math:`\mathbf{D}` the row degree, found with FAISS
    (:func:`~dreamgeo.graph.knn_graph_cosine`), never from a dense :math:`N \times N`
    similarity.

    Unweighted (:math:`S_{ij} = 1` for the :math:`k` neighbours, FREEDOM), it is the
    stored relation graph ``data['item', 'sim_<m>', 'item']`` when that one has
    :math:`k` neighbours per row, else it is built with
    :func:`~dreamgeo.graph.build_relation_graphs` (stored in :obj:`data` and cached in
    :obj:`cache_dir`) or, when a graph of another :math:`k` is stored, built without
    replacing it. Weighted (:math:`S_{ij} = \cos(\mathbf{x}_i, \mathbf{x}_j)`, MGCN) it
    is always built here.

    Args:
        data (HeteroData): The dataset.
        modality (str): The modality :math:`m`.
        k (int): Neighbours per item, self included.
        weighted (bool, optional): Keep the cosines as edge weights.
            (default: :obj:`False`)
        mode (str, optional): ``"exact"`` or ``"ivf"`` search. (default: :obj:`"exact"`)
        cache_dir (str, optional): Cache folder of unweighted graphs.
            (default: :obj:`None`)
        backend (str, optional): ``"faiss"`` or ``"torch"`` top-:math:`k` engine (with
            ``mode="ivf"``, ``"torch"`` is the torch IVF engine), see
            :func:`~dreamgeo.graph.knn_graph_cosine`. (default: :obj:`"faiss"`)

    Shapes:
        - **output:** ``edge_index`` ``[2, E]`` (row 0 the item whose neighbours are
          row 1), ``edge_weight`` ``[E]``
    """
    if k <= 0:
        raise ValueError(f"item_knn_graph: k must be > 0, got {k}")
    if mode == "ivf" and backend == "torch":
        backend = "torch_ivf"
    num_items = data[ITEM].num_nodes
    if not weighted:
        if _stored_graph_matches(data, modality, k):
            store = data[similarity_edge_type(ITEM, modality)]
            return store.edge_index, store.edge_weight
        if similarity_edge_type(ITEM, modality) not in data.edge_types:
            build_relation_graphs(
                data,
                k=k,
                node_types=(ITEM,),
                modalities=[modality],
                mode=mode,
                cache_dir=cache_dir,
                backend=backend,
            )
            store = data[similarity_edge_type(ITEM, modality)]
            return store.edge_index, store.edge_weight
        log.info("item graph of %s: the stored one has another k; building k=%d", modality, k)
        edge_index = knn_graph_cosine(
            data[ITEM][feature_key(modality)], k, mode=mode, backend=backend
        )
        return edge_index, symmetric_normalize(edge_index, num_items)
    edge_index, cosine = knn_graph_cosine(
        data[ITEM][feature_key(modality)], k, mode=mode, return_scores=True, backend=backend
    )
    return edge_index, symmetric_normalize(edge_index, num_items, cosine.float())


def weighted_graph_sum(
    graphs: Mapping[str, tuple[Tensor, Tensor]], weights: Mapping[str, float], num_nodes: int
) -> SparseOperator:
    r"""The operator of :math:`\sum_m w_m \tilde{\mathbf{S}}_m` (edges shared by several
    graphs add up).

    Args:
        graphs (Mapping[str, tuple[Tensor, Tensor]]): Modality to ``(edge_index,
            edge_weight)``.
        weights (Mapping[str, float]): Modality to :math:`w_m`.
        num_nodes (int): Number of nodes :math:`n`.

    Shapes:
        - **output:** operator ``[n, n]``
    """
    rows, cols, values = [], [], []
    for m, (edge_index, edge_weight) in graphs.items():
        rows.append(edge_index[0])
        cols.append(edge_index[1])
        values.append(edge_weight.float() * weights[m])
    return SparseOperator(
        torch.cat(rows), torch.cat(cols), torch.cat(values), (num_nodes, num_nodes)
    )


def image_text_weights(image_weight: float, modalities: Sequence[str]) -> dict[str, float]:
    r"""Per-modality weights from one image weight :math:`\alpha_V` (see
    :func:`dreamgeo.nn.modal_line.modality_weights`), with a log line where
    :obj:`image_weight` has no meaning (not image + text data)."""
    if sorted(modalities) != ["image", "text"]:
        log.info("image_weight applies to image + text data only; %s get equal weights", modalities)
    return modality_weights(image_weight, modalities)
