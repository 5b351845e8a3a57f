r"""Train DREAM with the paper's protocol and print its Recall/NDCG table.

    python examples/train_amazon.py --dataset baby --data-root data

reads ``data/baby/baby.inter`` and the feature files (MMRec format); when they are absent
it generates the planted synthetic ``baby`` preset and says so (``--preset`` picks
another). Every option: ``python examples/train_amazon.py --help``. The same command is
``dreamgeo train ...``.
"""

import sys

from dreamgeo.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
