r"""Train DREAM with the paper's protocol and print its Recall/NDCG table.

    python examples/train_amazon.py

trains on the embedded real dataset (Amazon Industrial & Scientific with CLIP image and
text features, shipped with the package), prints one line per epoch with the time left,
then the valid/test Recall and NDCG @10/@20 beside the best tuned baseline's, and writes
a run folder (checkpoint, metrics, training curve). The same command again is refused
rather than overwriting that folder: add ``--resume`` to continue it after a crash, or
``--overwrite``. MMRec's Baby/Sports/Clothing folders:

    python examples/train_amazon.py --dataset baby --data-root data

reads ``data/baby/baby.inter`` and the feature files (MMRec format); ``--preset NAME``
trains on a planted synthetic preset. Every option: ``python examples/train_amazon.py
--help``. The same command is ``dreamgeo train ...``.

The paper's tables come from the same script:

    python examples/train_amazon.py --experiment table2   # overall comparison
    python examples/train_amazon.py --experiment table3   # ablations
    python examples/train_amazon.py --experiment table4   # BMA plugged into baselines
    python examples/train_amazon.py --experiment grid     # hyper-parameter grid
    python examples/train_amazon.py --experiment seeds    # mean ± std over seeds

which is ``dreamgeo experiment NAME ...`` (options: ``dreamgeo experiment --help``).
"""

import sys

from dreamgeo.commands import main


def _argv(args: list[str]) -> list[str]:
    for index, arg in enumerate(args):
        if arg == "--experiment" and index + 1 < len(args):
            return ["experiment", args[index + 1], *args[:index], *args[index + 2 :]]
        if arg.startswith("--experiment="):
            return ["experiment", arg.split("=", 1)[1], *args[:index], *args[index + 1 :]]
    return ["train", *args]


if __name__ == "__main__":
    sys.exit(main(_argv(sys.argv[1:])))
