r"""Recommenders trained by the shared :class:`~dreamgeo.train.Trainer`
(:class:`~dreamgeo.DREAM` itself lives in :mod:`dreamgeo.nn`)."""

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

__all__ = ["Recommender", "LightGCN"]
__all__ += ["BPRMF", "VBPR", "BM3", "FREEDOM", "MGCN", "LGMRec", "DualGNN", "SLMRec"]
