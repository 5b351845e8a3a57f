r"""Every recommender of dreamgeo by name, and one way to build any of them from the data.

Import it as ``from dreamgeo.models.registry import MODELS, build_model``
(:mod:`dreamgeo.nn.dream` imports :mod:`dreamgeo.models`, so the package itself does
not import this module).
"""

from __future__ import annotations

from typing import Any

from torch_geometric.data import HeteroData

from dreamgeo.models.base import Recommender
from dreamgeo.models.bm3 import BM3
from dreamgeo.models.bpr import BPRMF
from dreamgeo.models.dualgnn import DualGNN
from dreamgeo.models.freedom import FREEDOM
from dreamgeo.models.lgmrec import LGMRec
from dreamgeo.models.lightgcn import LightGCN
from dreamgeo.models.mgcn import MGCN
from dreamgeo.models.slmrec import SLMRec
from dreamgeo.models.vbpr import VBPR
from dreamgeo.nn.dream import DREAM

__all__ = ["MODELS", "BMA_PLUGIN_MODELS", "build_model"]

#: Model name (as in the paper's Table 2, lower case) to class.
MODELS: dict[str, type[Recommender]] = {
    "bpr": BPRMF,
    "lightgcn": LightGCN,
    "vbpr": VBPR,
    "bm3": BM3,
    "freedom": FREEDOM,
    "mgcn": MGCN,
    "lgmrec": LGMRec,
    "dualgnn": DualGNN,
    "slmrec": SLMRec,
    "dream": DREAM,
}

#: Names of the baselines that accept a ``bma`` plug-in (:class:`~dreamgeo.nn.BMALoss`);
#: DREAM has BMA built in, DualGNN has no behaviour/modal split of items.
BMA_PLUGIN_MODELS: tuple[str, ...] = ("vbpr", "bm3", "freedom", "mgcn", "lgmrec", "slmrec")


def build_model(name: str, data: HeteroData, **kwargs: Any) -> Recommender:
    r"""The model ``name`` (a key of :data:`MODELS`, case-insensitive) built on ``data``
    with its ``from_data`` classmethod (DREAM: its constructor), ``kwargs`` passed on.

    Args:
        name (str): Model name, e.g. ``"freedom"``.
        data (HeteroData): The dataset (``DESIGN.md`` section 2).
        **kwargs: Model arguments, e.g. ``embedding_dim=64`` or ``bma=BMALoss()``.
    """
    key = name.lower()
    if key not in MODELS:
        raise ValueError(f"Unknown model '{name}'; choose one of {sorted(MODELS)}")
    cls = MODELS[key]
    if key == "dream":
        return cls(data, **kwargs)
    try:
        return cls.from_data(data, **kwargs)
    except TypeError as error:
        raise TypeError(f"build_model('{name}'): {error}") from error
