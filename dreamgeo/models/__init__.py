r"""Recommenders trained by the shared :class:`~dreamgeo.train.Trainer`
(:class:`~dreamgeo.DREAM` itself lives in :mod:`dreamgeo.nn`)."""

from dreamgeo.models.base import Recommender
from dreamgeo.models.lightgcn import LightGCN

__all__ = ["Recommender", "LightGCN"]
