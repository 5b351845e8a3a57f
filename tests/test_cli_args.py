r"""``dreamgeo`` command-line validation: every bad value stops with exit code 2 and a
one-line ``error:`` message naming the flag, before any data is generated or loaded.

Cases:

* flag values (argparse, message ``argument --FLAG: ...``): ``--knn-k``, ``--epochs``,
  ``--batch-size``, ``--embedding-dim``, ``--patience`` <= 0 or not an integer;
  ``--num-layers``, ``--seed``, ``--data-seed`` < 0; ``--intra-weight``,
  ``--inter-weight``, ``--s3-weight``, ``--reg-weight`` < 0, NaN or infinite;
  ``--tau``, ``--lr`` <= 0; unknown ``--preset`` or ``--model``;
* ``--modal-weights``: no ``=`` (``image0.3``), empty name, non-numeric (``image=abc``),
  negative, NaN, a modality given twice, a sum off 1 by more than 1e-6 (within 1e-6
  passes), a modality the data does not have (checked against the planted preset or the
  dataset folder's ``planted.json`` without reading data);
* datasets: an unknown name is an error listing the datasets found under
  ``--data-root`` (or ``none``); a dataset folder without ``NAME.inter`` is an error; the
  default ``--dataset baby`` with no files keeps falling back to the planted preset;
  ``--preset`` overrides ``--dataset``;
* model flags that do not fit together: ``--ablation`` or ``--feature-dtype bfloat16``
  with a baseline, ``--bma`` with
  DREAM or with a model without a modal line, an encoder ablation of a missing modality;
* ``recommend --top-k 0``, ``generate --preset nope`` (nothing written);
* one subprocess run: the real console entry point prints no traceback.
"""

import json
import subprocess
import sys

import pytest

from dreamgeo import cli


class DataTouched(Exception):
    pass


@pytest.fixture
def no_data(monkeypatch):
    r"""Fails any attempt to load or generate data; records the arguments."""
    calls = []

    def refuse(*args, **kwargs):
        calls.append(args)
        raise DataTouched(args)

    monkeypatch.setattr(cli, "load_data", refuse)
    monkeypatch.setattr("dreamgeo.datasets.write_planted", refuse)
    return calls


def run_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as raised:
        cli.main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--knn-k", "0"], "argument --knn-k: must be > 0, got 0"),
        (["--knn-k", "-3"], "argument --knn-k: must be > 0, got -3"),
        (["--knn-k", "2.5"], "argument --knn-k: expected an integer, got '2.5'"),
        (["--epochs", "0"], "argument --epochs: must be > 0, got 0"),
        (["--batch-size", "-1"], "argument --batch-size: must be > 0, got -1"),
        (["--embedding-dim", "0"], "argument --embedding-dim: must be > 0, got 0"),
        (["--patience", "0"], "argument --patience: must be > 0, got 0"),
        (["--num-layers", "-1"], "argument --num-layers: must be >= 0, got -1"),
        (["--seed", "-1"], "argument --seed: must be >= 0, got -1"),
        (["--data-seed", "-2"], "argument --data-seed: must be >= 0, got -2"),
        (["--intra-weight", "-0.1"], "argument --intra-weight: must be a finite number >= 0"),
        (["--inter-weight", "-1"], "argument --inter-weight: must be a finite number >= 0"),
        (["--s3-weight=-1e-3"], "argument --s3-weight: must be a finite number >= 0"),
        (["--reg-weight", "-1"], "argument --reg-weight: must be a finite number >= 0"),
        (["--reg-weight", "nan"], "argument --reg-weight: must be a finite number >= 0"),
        (["--s3-weight", "inf"], "argument --s3-weight: must be a finite number >= 0"),
        (["--intra-weight", "x"], "argument --intra-weight: expected a number, got 'x'"),
        (["--tau", "0"], "argument --tau: must be > 0, got 0"),
        (["--tau", "-0.2"], "argument --tau: must be a finite number >= 0, got -0.2"),
        (["--lr", "0"], "argument --lr: must be > 0, got 0"),
        (["--lr=-1e-3"], "argument --lr: must be a finite number >= 0, got -1e-3"),
        (["--preset", "nope"], "argument --preset: invalid choice: 'nope'"),
        (["--model", "dreem"], "argument --model: invalid choice: 'dreem'"),
        (["--modal-weights", "image0.3"], "expected NAME=WEIGHT[,NAME=WEIGHT...]"),
        (["--modal-weights", "=0.3,text=0.7"], "expected NAME=WEIGHT[,NAME=WEIGHT...]"),
        (["--modal-weights", "image=0.3,"], "expected NAME=WEIGHT[,NAME=WEIGHT...]"),
        (
            ["--modal-weights", "image=abc,text=1"],
            "argument --modal-weights: image=abc: expected a number, got 'abc'",
        ),
        (
            ["--modal-weights", "image=-0.3,text=1.3"],
            "argument --modal-weights: image=-0.3: must be a finite number >= 0, got -0.3",
        ),
        (["--modal-weights", "image=nan,text=1"], "image=nan: must be a finite number >= 0"),
        (
            ["--modal-weights", "image=0.5,image=0.5"],
            "argument --modal-weights: modality 'image' is given twice in 'image=0.5,image=0.5'",
        ),
        (
            ["--modal-weights", "image=0.3,text=0.6"],
            "argument --modal-weights: modal weights must sum to 1 (Eq. 7 of the paper), "
            "got image=0.3,text=0.6 (sum 0.9)",
        ),
        (["--modal-weights", "image=0.3,text=0.70001"], "must sum to 1"),
    ],
)
def test_bad_flag_values_stop_before_data(tmp_path, capsys, no_data, flags, message):
    argv = ["train", "--data-root", str(tmp_path), *flags]
    line = run_error(argv, capsys)
    assert line.startswith("dreamgeo train: error: ")
    assert message in line
    assert no_data == [] and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--modal-weights", "image=0.3,audio=0.7"],
            "--modal-weights names ['audio', 'image'], but the data has the modalities "
            "['image', 'text']",
        ),
        (["--modal-weights", "image=1"], "--modal-weights names ['image'], but the data"),
        (["--ablation", "no_s3", "--model", "lightgcn"], "--ablation applies to --model dream"),
        (
            ["--feature-dtype", "bfloat16", "--model", "mgcn"],
            "--feature-dtype applies to --model dream",
        ),
        (["--bma"], "--bma: DREAM has BMA built in (see --ablation)"),
        (["--bma", "--model", "lightgcn"], "--bma: lightgcn has no behaviour/modal split"),
    ],
)
def test_inconsistent_flags_stop_before_data(tmp_path, capsys, no_data, flags, message):
    line = run_error(["train", "--data-root", str(tmp_path), "--preset", "tiny", *flags], capsys)
    assert line.startswith("dreamgeo train: error: ")
    assert message in line
    assert no_data == [] and list(tmp_path.iterdir()) == []


def test_modal_weights_are_parsed_with_a_tolerance():
    parser = cli.build_parser()
    args = parser.parse_args(["train", "--modal-weights", " image = 0.3 , text=0.7000001"])
    assert args.modal_weights == {"image": 0.3, "text": 0.7000001}
    args = parser.parse_args(["train", "--modal-weights", "a=0.25,b=0.25,c=0.5"])
    assert args.modal_weights == {"a": 0.25, "b": 0.25, "c": 0.5}


def make_dataset_folder(root, name, modalities=None):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / f"{name}.inter").write_text("userID\titemID\tx_label\n0\t0\t0\n")
    if modalities is not None:
        (folder / "planted.json").write_text(json.dumps({"modalities": modalities}))
    return folder


def test_unknown_dataset_lists_the_available_ones(tmp_path, capsys, no_data):
    make_dataset_folder(tmp_path, "sports")
    make_dataset_folder(tmp_path, "baby")
    (tmp_path / "cache").mkdir()  # not a dataset: no cache/cache.inter
    line = run_error(["train", "--data-root", str(tmp_path), "--dataset", "sprots"], capsys)
    assert line == (
        f"dreamgeo train: error: --dataset sprots: no MMRec files at "
        f"{tmp_path / 'sprots' / 'sprots.inter'}; datasets in {tmp_path}: baby, sports "
        f"(pass --preset NAME to train on planted synthetic data; only the default "
        f"--dataset baby falls back to it)"
    )
    assert no_data == []


def test_unknown_dataset_in_an_empty_root(tmp_path, capsys, no_data):
    line = run_error(["train", "--data-root", str(tmp_path), "--dataset", "clothing"], capsys)
    assert f"datasets in {tmp_path}: none (pass --preset NAME" in line
    assert no_data == [] and list(tmp_path.iterdir()) == []


def test_dataset_folder_without_inter_file(tmp_path, capsys, no_data):
    (tmp_path / "baby").mkdir()
    (tmp_path / "baby" / "image_feat.npy").write_bytes(b"")
    line = run_error(["train", "--data-root", str(tmp_path)], capsys)
    assert line == (
        f"dreamgeo train: error: --dataset baby: the folder {tmp_path / 'baby'} exists but "
        f"has no baby.inter; add it (MMRec format), or pass --preset NAME to train on "
        f"planted data"
    )
    assert no_data == []


@pytest.mark.parametrize(
    "flags, expected_call",
    [
        ([], ("baby", None)),  # the documented fallback: no files, default name
        (["--dataset", "baby", "--modal-weights", "image=0.4,text=0.6"], ("baby", None)),
        (["--dataset", "anything", "--preset", "tiny"], ("anything", "tiny")),
    ],
)
def test_valid_flags_reach_the_data_loading(tmp_path, no_data, flags, expected_call):
    with pytest.raises(DataTouched):
        cli.main(["train", "--data-root", str(tmp_path), *flags])
    (dataset, data_root, preset, data_seed) = no_data[0]
    assert (dataset, preset) == expected_call
    assert data_root == str(tmp_path) and data_seed == 0


def test_modalities_of_a_dataset_folder_come_from_its_sidecar(tmp_path, capsys, no_data):
    make_dataset_folder(tmp_path, "shop", modalities={"image": "image_feat.npy"})
    argv = ["train", "--data-root", str(tmp_path), "--dataset", "shop"]
    line = run_error([*argv, "--ablation", "no_text_encoder"], capsys)
    assert line == (
        "dreamgeo train: error: --ablation no_text_encoder: the data has no 'text' "
        "modality (['image'])"
    )
    line = run_error([*argv, "--modal-weights", "image=0.3,text=0.7"], capsys)
    assert "but the data has the modalities ['image']" in line
    assert no_data == []
    with pytest.raises(DataTouched):  # consistent flags pass on to loading the files
        cli.main([*argv, "--modal-weights", "image=1", "--ablation", "no_image_encoder"])
    assert no_data[0][0] == "shop"


def test_recommend_and_generate_flags(tmp_path, capsys, no_data):
    line = run_error(["recommend", "--run-dir", "x", "--output", "y", "--top-k", "0"], capsys)
    assert "argument --top-k: must be > 0, got 0" in line
    line = run_error(["generate", "--data-root", str(tmp_path), "--preset", "nope"], capsys)
    assert line.startswith("dreamgeo generate: error: unknown preset 'nope'; choose one of")
    assert list(tmp_path.iterdir()) == []


def test_console_entry_point_prints_one_error_line(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "dreamgeo.cli", "train", "--knn-k", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == (
        "dreamgeo train: error: argument --knn-k: must be > 0, got 0"
    )
    assert "Traceback" not in completed.stderr
    assert list(tmp_path.iterdir()) == []
