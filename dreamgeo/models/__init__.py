r"""Every recommender of dreamgeo, DREAM and its baselines, one file each, trained by
the shared :class:`~dreamgeo.train.Trainer`. Importing this package registers every
model in :data:`MODELS` (see :mod:`dreamgeo.models.registry`); a new model is one new
file plus one import line below."""

from dreamgeo.models.base import DualRepresentation, Objective, Recommender
from dreamgeo.models.bm3 import BM3

# one import line per model: importing a model's module registers it
from dreamgeo.models.bpr import BPRMF
from dreamgeo.models.dream import ABLATIONS, DREAM
from dreamgeo.models.dualgnn import DualGNN
from dreamgeo.models.freedom import FREEDOM
from dreamgeo.models.lattice import LATTICE
from dreamgeo.models.lgmrec import LGMRec
from dreamgeo.models.lightgcn import LightGCN
from dreamgeo.models.mgcn import MGCN
from dreamgeo.models.registry import (
    MODELS,
    ModelInfo,
    build_model,
    get_model,
    models_in_table,
    register_model,
)
from dreamgeo.models.slmrec import SLMRec
from dreamgeo.models.vbpr import VBPR

__all__ = [
    "Recommender",
    "DualRepresentation",
    "Objective",
    "MODELS",
    "ModelInfo",
    "build_model",
    "get_model",
    "models_in_table",
    "register_model",
    "ABLATIONS",
    "BPRMF",
    "LightGCN",
    "VBPR",
    "DualGNN",
    "SLMRec",
    "BM3",
    "LATTICE",
    "FREEDOM",
    "MGCN",
    "LGMRec",
    "DREAM",
]
