r"""``python -m dreamgeo.commands ...`` is the ``dreamgeo ...`` console script."""

import sys

from dreamgeo.commands.main import main

sys.exit(main())
