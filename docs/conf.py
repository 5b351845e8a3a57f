"""Sphinx configuration of dreamgeo's documentation.

Build (warnings are errors, as in CI)::

    python -m pip install -e ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The markdown pages (``*.md``) are read by myst-parser; the API reference
(``api/*.rst``) is generated from the docstrings by autodoc, with napoleon reading
their PyTorch Geometric style (``Args:``, ``Shapes:``, ``:obj:``, ``.. math::``).
"""

from __future__ import annotations

import os
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)  # build from a checkout without installing dreamgeo

import dreamgeo  # noqa: E402

project = "dreamgeo"
author = "dreamgeo contributors"
copyright = "dreamgeo contributors"
release = version = dreamgeo.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# myst-parser: GitHub-style anchors for "page.md#section" links, $...$ maths
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# autodoc: members in source order, type hints in the description, not the signature
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
autoclass_content = "class"

# napoleon: Google style as PyG writes it ("Args:", "Returns:"); PyG's "Shapes:"
# section is rendered as a titled section with its bullet list kept as written
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_custom_sections = ["Shapes"]

html_theme = "alabaster"
html_title = f"dreamgeo {release}"


# --- the CLI reference: docs/cli.md's "--help" blocks are generated (docs/gen_cli.py);
# substitute them in memory so the HTML always shows the parser of this checkout
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_cli  # noqa: E402
from sphinx.util import logging as sphinx_logging  # noqa: E402

_logger = sphinx_logging.getLogger(__name__)


def _refresh_cli_help(app, docname, source):
    if docname != "cli":
        return
    fresh = gen_cli.render(source[0])
    if fresh != source[0]:
        _logger.info(
            "cli.md: --help blocks refreshed for this build; "
            "run python docs/gen_cli.py to update the file"
        )
        source[0] = fresh


def setup(app):
    app.connect("source-read", _refresh_cli_help)
