r"""matplotlib, imported only when a figure is drawn, on the file-only Agg backend."""

from __future__ import annotations

from types import ModuleType

__all__ = ["import_pyplot"]

INSTALL_HINT = "pip install dreamgeo[plots]"


def import_pyplot() -> ModuleType:
    r"""``matplotlib.pyplot`` on the Agg backend (figures go to files, no display
    needed), or an :class:`ImportError` that says how to install it."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(f"dreamgeo.diagnostics plots need matplotlib: {INSTALL_HINT}") from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
