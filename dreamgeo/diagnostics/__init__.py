r"""Diagnostics of dual representations (the paper's Fig. 1b, 2a, 6b and 7): Modal
Information Forgetting, behaviour–modal cosine, a :class:`~dreamgeo.train.Trainer`
callback that logs both (and gate activations, representation norms and the full S3)
every epoch, and figures (matplotlib and scikit-learn, from the ``plots`` extra,
imported only when a figure is drawn)."""

from dreamgeo.diagnostics.alignment import behavior_modal_cosine
from dreamgeo.diagnostics.callback import DualRepresentationDiagnostics, dual_representations_of
from dreamgeo.diagnostics.curves import (
    plot_behavior_modal_cosine,
    plot_epoch_curves,
    plot_forgetting,
    plot_training_curve,
    read_metrics,
)
from dreamgeo.diagnostics.forgetting import (
    cosine_distance,
    modal_information_forgetting,
    pairwise_cosines,
)
from dreamgeo.diagnostics.sampling import sample_nodes, sampled_raw_features
from dreamgeo.diagnostics.training_state import (
    gate_activations,
    representation_norms,
    s3_sample_loss,
)
from dreamgeo.diagnostics.tsne import embed_2d, plot_dual_tsne

__all__ = [
    "modal_information_forgetting",
    "pairwise_cosines",
    "cosine_distance",
    "behavior_modal_cosine",
    "sample_nodes",
    "sampled_raw_features",
    "DualRepresentationDiagnostics",
    "dual_representations_of",
    "gate_activations",
    "representation_norms",
    "s3_sample_loss",
    "read_metrics",
    "plot_epoch_curves",
    "plot_forgetting",
    "plot_training_curve",
    "plot_behavior_modal_cosine",
    "embed_2d",
    "plot_dual_tsne",
]
