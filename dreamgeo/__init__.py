r"""dreamgeo: DREAM and multimodal recommendation on PyTorch Geometric."""

from dreamgeo.models import DREAM
from dreamgeo.nn import BMALoss, BPRLoss, S3Loss

__version__ = "0.1.0"

__all__ = ["DREAM", "BMALoss", "S3Loss", "BPRLoss", "__version__"]
