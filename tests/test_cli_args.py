r"""``dreamgeo`` command-line validation: every bad value stops with exit code 2 and a
one-line ``error:`` message naming the flag or key, before any data is generated or
loaded.

Cases:

* hyper-parameter flags (checked against the chosen model's declaration, message
  ``--FLAG: MODEL: KEY must be ...``): ``--knn-k``, ``--epochs``, ``--batch-size``,
  ``--embedding-dim``, ``--patience``, ``--num-layers`` below 1 or not integers;
  ``--seed`` < 0; ``--intra-weight``, ``--inter-weight``, ``--s3-weight``,
  ``--reg-weight`` < 0, NaN or infinite; ``--tau``, ``--lr`` <= 0; ``--image-weight``
  outside [0, 1]; a flag the model does not take; unknown ``--preset`` or ``--model``
  (argparse);
* datasets: an unknown name is an error listing the datasets found under
  ``--data-root`` and the embedded ones; a dataset folder without ``NAME.inter`` is an
  error; no ``--dataset`` means the embedded ``scientific``; ``--preset`` overrides
  ``--dataset``;
* options that do not fit the model: ``--feature-dtype`` or ``--knn-backend`` with a
  baseline, an encoder ablation of a missing modality;
* ``recommend --top-k 0``, ``generate --preset nope`` (nothing written);
* one subprocess run: the real console entry point prints no traceback.
"""

import json
import subprocess
import sys

import pytest

from dreamgeo import commands


class DataTouched(Exception):
    pass


@pytest.fixture
def no_data(monkeypatch):
    r"""Fails any attempt to load or generate data; records the sources asked for."""
    calls = []

    def refuse(source, *args, **kwargs):
        calls.append(source)
        raise DataTouched(source)

    monkeypatch.setattr("dreamgeo.datasets.source.load_source", refuse)
    monkeypatch.setattr("dreamgeo.datasets.write_planted", refuse)
    return calls


def run_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as raised:
        commands.main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--knn-k", "0"], "--knn-k: dream: knn_k must be >= 1, got 0"),
        (["--knn-k", "-3"], "--knn-k: dream: knn_k must be >= 1, got -3"),
        (["--knn-k", "2.5"], "--knn-k: dream: knn_k must be an integer, got '2.5'"),
        (["--epochs", "0"], "--epochs: dream: epochs must be >= 1, got 0"),
        (["--batch-size", "-1"], "--batch-size: dream: batch_size must be >= 1, got -1"),
        (["--embedding-dim", "0"], "--embedding-dim: dream: embedding_dim must be >= 1, got 0"),
        (["--patience", "0"], "--patience: dream: patience must be >= 1, got 0"),
        (["--num-layers", "-1"], "--num-layers: dream: num_layers must be >= 1, got -1"),
        (["--num-layers", "0"], "--num-layers: dream: num_layers must be >= 1, got 0"),
        (["--seed", "-1"], "--seed: dream: seed must be >= 0, got -1"),
        (["--data-seed", "-2"], "argument --data-seed: must be >= 0, got -2"),
        (["--intra-weight", "-0.1"], "--intra-weight: dream: intra_weight must be >= 0"),
        (["--inter-weight", "-1"], "--inter-weight: dream: inter_weight must be >= 0"),
        (["--s3-weight=-1e-3"], "--s3-weight: dream: s3_weight must be >= 0, got -0.001"),
        (["--s3-weight", "-1e-3"], "--s3-weight: dream: s3_weight must be >= 0, got -0.001"),
        (["--reg-weight", "-1"], "--reg-weight: dream: reg_weight must be >= 0, got -1"),
        (["--reg-weight", "nan"], "--reg-weight: dream: reg_weight must be finite, got nan"),
        (["--s3-weight", "inf"], "--s3-weight: dream: s3_weight must be finite, got inf"),
        (["--intra-weight", "x"], "--intra-weight: dream: intra_weight must be a number, got 'x'"),
        (["--tau", "0"], "--tau: dream: tau must be > 0, got 0"),
        (["--tau", "-0.2"], "--tau: dream: tau must be > 0, got -0.2"),
        (["--lr", "0"], "--lr: dream: lr must be > 0, got 0"),
        (["--lr=-1e-3"], "--lr: dream: lr must be > 0, got -0.001"),
        (["--image-weight", "1.5"], "--image-weight: dream: image_weight must be [0, 1], got 1.5"),
        (["--preset", "nope"], "argument --preset: invalid choice: 'nope'"),
        (["--model", "dreem"], "argument --model: invalid choice: 'dreem'"),
        (["--model", "lightgcn", "--knn-k", "5"], "--knn-k: lightgcn does not use '--knn-k'"),
        (["--model", "mgcn", "--ablation", "no_s3"], "--ablation: mgcn does not use"),
        (["--bma"], "--bma: dream does not use '--bma' (a hyper-parameter of"),
        (["--model", "lightgcn", "--bma"], "--bma: lightgcn does not use '--bma'"),
        (["--model", "vbpr", "--intra-weight", "0.1"], "vbpr does not use '--intra-weight'"),
        (["--set", "nope=1"], "--set: unknown hyper-parameter 'nope'; dream takes:"),
        (["--model", "mgcn", "--feature-dtype", "bfloat16"], "--feature-dtype: not an option"),
        (["--model", "bpr", "--knn-backend", "faiss"], "--knn-backend: not an option of bpr"),
    ],
)
def test_bad_flag_values_stop_before_data(tmp_path, capsys, no_data, flags, message):
    argv = ["train", "--data-root", str(tmp_path), *flags]
    line = run_error(argv, capsys)
    assert line.startswith("dreamgeo train: error: ")
    assert message in line
    assert no_data == [] and list(tmp_path.iterdir()) == []


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
        f"{tmp_path / 'sprots' / 'sprots.inter'}; datasets in {tmp_path}: baby, sports; "
        f"embedded: scientific (make a dataset folder from raw files with `dreamgeo "
        f"prepare`, see docs/data.md)"
    )
    assert no_data == []


def test_unknown_dataset_in_an_empty_root(tmp_path, capsys, no_data):
    line = run_error(["train", "--data-root", str(tmp_path), "--dataset", "clothing"], capsys)
    assert f"datasets in {tmp_path}: none; embedded: scientific" in line
    assert no_data == [] and list(tmp_path.iterdir()) == []


def test_dataset_folder_without_inter_file(tmp_path, capsys, no_data):
    (tmp_path / "baby").mkdir()
    (tmp_path / "baby" / "image_feat.npy").write_bytes(b"")
    line = run_error(["train", "--data-root", str(tmp_path), "--dataset", "baby"], capsys)
    assert line == (
        f"dreamgeo train: error: --dataset baby: the folder {tmp_path / 'baby'} exists but "
        f"has no baby.inter; add it (MMRec format: see docs/data.md), or make the folder "
        f"from raw interactions with `dreamgeo prepare`"
    )
    assert no_data == []


@pytest.mark.parametrize(
    "flags, expected",
    [
        ([], ("embedded", "scientific", None)),  # the default: real embedded data
        (["--image-weight", "0.4"], ("embedded", "scientific", None)),
        (["--dataset", "anything", "--preset", "tiny"], ("planted", "planted_tiny", "tiny")),
    ],
)
def test_valid_flags_reach_the_data_loading(tmp_path, no_data, flags, expected):
    with pytest.raises(DataTouched):
        commands.main(
            ["train", "--data-root", str(tmp_path), "--out-dir", str(tmp_path / "r"), *flags]
        )
    source = no_data[0]
    assert (source.kind, source.name, source.preset) == expected
    assert source.root == str(tmp_path) and source.data_seed == 0


def test_modalities_of_a_dataset_folder_come_from_its_sidecar(tmp_path, capsys, no_data):
    make_dataset_folder(tmp_path, "shop", modalities={"image": "image_feat.npy"})
    argv = ["train", "--data-root", str(tmp_path), "--dataset", "shop"]
    line = run_error([*argv, "--ablation", "no_text_encoder"], capsys)
    assert line == (
        "dreamgeo train: error: ablation no_text_encoder: the data has no 'text' "
        "modality (['image'])"
    )
    assert no_data == []
    with pytest.raises(DataTouched):  # consistent flags pass on to loading the files
        commands.main([*argv, "--ablation", "no_image_encoder", "--out-dir", str(tmp_path / "r")])
    assert no_data[0].name == "shop"


def test_recommend_and_generate_flags(tmp_path, capsys, no_data):
    line = run_error(["recommend", "--run-dir", "x", "--output", "y", "--top-k", "0"], capsys)
    assert "argument --top-k: must be > 0, got 0" in line
    line = run_error(["generate", "--data-root", str(tmp_path), "--preset", "nope"], capsys)
    assert line.startswith("dreamgeo generate: error: unknown preset 'nope'; choose one of")
    assert list(tmp_path.iterdir()) == []


def test_console_entry_point_prints_one_error_line(tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "dreamgeo.commands", "train", "--knn-k", "0"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == (
        "dreamgeo train: error: --knn-k: dream: knn_k must be >= 1, got 0"
    )
    assert "Traceback" not in completed.stderr
    assert list(tmp_path.iterdir()) == []
