r"""dreamgeo: DREAM and multimodal recommendation on PyTorch Geometric."""

from dreamgeo.nn import DREAM, BMALoss, BPRLoss, S3Loss

__version__ = "0.1.0"

__all__ = ["DREAM", "BMALoss", "S3Loss", "BPRLoss", "__version__"]
