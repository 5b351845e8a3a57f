r"""Train DREAM with the paper's protocol and print its Recall/NDCG table.

    python examples/train_amazon.py --dataset baby --data-root data

reads ``data/baby/baby.inter`` and the feature files (MMRec format); when they are absent
it generates the planted synthetic ``baby`` preset and says so (``--preset`` picks
another). Every option: ``python examples/train_amazon.py --help``. The same command is
``dreamgeo train ...``.

The paper's tables come from the same script:

    python examples/train_amazon.py --experiment table2   # overall comparison
    python examples/train_amazon.py --experiment table3   # ablations
    python examples/train_amazon.py --experiment table4   # BMA plugged into baselines
    python examples/train_amazon.py --experiment grid     # hyper-parameter grid
    python examples/train_amazon.py --experiment seeds    # mean ± std over seeds

which is ``dreamgeo experiment NAME ...`` (options: ``dreamgeo experiment --help``).
"""

import sys

from dreamgeo.cli import main


def _argv(args: list[str]) -> list[str]:
    for index, arg in enumerate(args):
        if arg == "--experiment" and index + 1 < len(args):
            return ["experiment", args[index + 1], *args[:index], *args[index + 2 :]]
        if arg.startswith("--experiment="):
            return ["experiment", arg.split("=", 1)[1], *args[:index], *args[index + 1 :]]
    return ["train", *args]


if __name__ == "__main__":
    sys.exit(main(_argv(sys.argv[1:])))
