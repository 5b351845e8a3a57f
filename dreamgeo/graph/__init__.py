r"""Modal relation graphs: FAISS cosine top-:math:`k`, normalization and the
:class:`~torch_geometric.data.HeteroData` builders (``DESIGN.md`` section 3.3)."""

from dreamgeo.graph.hetero import (
    build_relation_graphs,
    relation_graph_adjacency,
    user_mean_features,
)
from dreamgeo.graph.knn import knn_graph_cosine, knn_recall
from dreamgeo.graph.knn_query import cosine_top_k
from dreamgeo.graph.modality_agreement import (
    agreeing_modalities,
    agreement_weights,
    modality_agreement,
)
from dreamgeo.graph.normalize import NORMALIZATION_VERSION, symmetric_normalize

__all__ = [
    "knn_graph_cosine",
    "cosine_top_k",
    "knn_recall",
    "symmetric_normalize",
    "NORMALIZATION_VERSION",
    "user_mean_features",
    "build_relation_graphs",
    "relation_graph_adjacency",
    "modality_agreement",
    "agreement_weights",
    "agreeing_modalities",
]
