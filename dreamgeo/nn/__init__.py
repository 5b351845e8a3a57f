r"""Layers and losses of dreamgeo."""

from dreamgeo.nn.behavior_line import BehaviorLine
from dreamgeo.nn.bma_loss import BMALoss, BMAParts, info_nce
from dreamgeo.nn.bpr_loss import BPRLoss
from dreamgeo.nn.conv import BipartiteLGConv, bipartite_normalized_weight, propagate_layers
from dreamgeo.nn.dynamic_negatives import DynamicNegativeSampling
from dreamgeo.nn.edge_pruning import EpochEdgePruning, degree_sensitive_pruning
from dreamgeo.nn.item_bias import ItemBias
from dreamgeo.nn.modal_encoder import ModalEncoder
from dreamgeo.nn.modal_line import ModalLine
from dreamgeo.nn.s3_loss import S3Loss
from dreamgeo.nn.s3_regularizer import S3Regularizer
from dreamgeo.nn.softmax_loss import SampledSoftmaxLoss
from dreamgeo.nn.sparse import SparseOperator, sparse_matmul, user_mean_operator

__all__ = [
    "SparseOperator",
    "sparse_matmul",
    "user_mean_operator",
    "propagate_layers",
    "BehaviorLine",
    "ModalLine",
    "S3Regularizer",
    "BipartiteLGConv",
    "bipartite_normalized_weight",
    "EpochEdgePruning",
    "degree_sensitive_pruning",
    "DynamicNegativeSampling",
    "ItemBias",
    "BPRLoss",
    "BMALoss",
    "BMAParts",
    "info_nce",
    "S3Loss",
    "SampledSoftmaxLoss",
    "ModalEncoder",
]
