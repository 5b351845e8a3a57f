r"""Named modalities (issue 31, point 1): a dataset folder's modalities are its
``<name>_feat.npy`` files, all of them by default (sorted by name), a subset with
``--modalities`` / ``MMRecDataset(..., modalities=[...])``.

* from the CLI (``dreamgeo.commands.main.main``, one epoch): a folder with
  ``image_feat.npy`` + ``audio_feat.npy`` trains DREAM and every multimodal baseline; a
  text-only folder and a folder with three modalities train DREAM; ``--modalities``
  picks a subset, recorded in ``run.json`` and checked on ``--resume``; an unknown name
  is an error listing the modalities found (``train``, ``tune``, ``experiment``);
* the loader: lists, mappings, a single name, a ``planted.json`` sidecar naming files of
  any name; errors for a folder without feature files and for a missing file list the
  feature files found and point to ``dreamgeo prepare`` / ``dreamgeo features``, never
  to synthetic data;
* in Python: every multimodal model built by :func:`dreamgeo.models.build_model` on
  1, 2 and 3 modalities gives a finite loss and finite scores (SLMRec takes one or two
  modalities only: its three-modality case is an expected failure, see its docstring).
"""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dreamgeo.commands.common import load_run
from dreamgeo.commands.main import main
from dreamgeo.datasets import ITEM, MMRecDataset, modality_names
from dreamgeo.datasets.mmrec import find_modalities
from dreamgeo.models import build_model
from tests.conftest import make_random_data

MULTIMODAL = ("dream", "vbpr", "dualgnn", "slmrec", "bm3", "lattice", "freedom", "mgcn", "lgmrec")
DIMS = {"image": 12, "text": 6, "audio": 5}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # tiny tensors: on a shared 2-core machine OpenMP hand-offs cost more than the work
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_folder(root: Path, name: str, modalities, num_users=40, num_items=60, seed=0) -> Path:
    r"""``root/name`` with ``name.inter`` (every user: 4 train, 1 valid, 1 test rows) and
    one ``<m>_feat.npy`` per modality of :obj:`modalities` (name -> dim)."""
    rng = np.random.default_rng(seed)
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["userID\titemID\tx_label"]
    for user in range(num_users):
        items = rng.choice(num_items, 6, replace=False)
        lines += [f"{user}\t{item}\t{label}" for item, label in zip(items, [0, 0, 0, 0, 1, 2])]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n")
    for modality, dim in modalities.items():
        x = rng.normal(size=(num_items, dim)).astype(np.float32)
        np.save(folder / f"{modality}_feat.npy", x)
    return folder


def train(root: Path, name: str, *flags: str, out: str = "run") -> Path:
    out_dir = root / out
    argv = [
        "train",
        "--dataset",
        name,
        "--data-root",
        str(root),
        "--cache-dir",
        str(root / "cache"),
        "--epochs",
        "1",
        "--no-progress",
        "--no-diagnostics",
        "--out-dir",
        str(out_dir),
        *flags,
    ]
    assert main(argv) == 0
    return out_dir


def run_error(argv, capsys) -> str:
    with pytest.raises(SystemExit) as raised:
        main(argv)
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def image_audio(tmp_path_factory):
    root = tmp_path_factory.mktemp("av")
    write_folder(root, "clips", {"image": 12, "audio": 5})
    return root


@pytest.mark.parametrize("model", MULTIMODAL)
def test_image_audio_folder_trains_every_multimodal_model(image_audio, model, capsys):
    out_dir = train(image_audio, "clips", "--model", model, out=f"run-{model}")
    printed = capsys.readouterr().out
    assert "modalities ['audio', 'image']" in printed  # every <name>_feat.npy, sorted
    record = json.loads((out_dir / "run.json").read_text())
    assert record["modalities"] == ["audio", "image"]
    result = json.loads((out_dir / "result.json").read_text())
    assert result["epochs_run"] == 1
    assert np.isfinite(result["valid"]["recall@20"])


def test_text_only_folder_trains(tmp_path):
    write_folder(tmp_path, "reviews", {"text": 6})
    out_dir = train(tmp_path, "reviews")
    assert json.loads((out_dir / "run.json").read_text())["modalities"] == ["text"]
    assert (out_dir / "result.json").is_file()


@pytest.fixture
def three(tmp_path):
    write_folder(tmp_path, "three", DIMS)
    return tmp_path


def test_three_modality_folder_trains(three):
    out_dir = train(three, "three")
    assert json.loads((out_dir / "run.json").read_text())["modalities"] == [
        "audio",
        "image",
        "text",
    ]
    assert (out_dir / "result.json").is_file()


def test_modalities_flag_picks_a_subset_and_is_part_of_the_resume_check(three, capsys):
    out_dir = train(three, "three", "--modalities", "image,audio")
    printed = capsys.readouterr().out
    assert "(modalities image, audio)" in printed and "modalities ['image', 'audio']" in printed
    record = json.loads((out_dir / "run.json").read_text())
    assert record["modalities"] == ["image", "audio"]
    assert record["data"].endswith("(modalities image, audio)")
    argv = ["train", "--dataset", "three", "--data-root", str(three), "--out-dir", str(out_dir)]
    argv += ["--cache-dir", str(three / "cache"), "--epochs", "1", "--no-progress", "--resume"]
    with pytest.raises(SystemExit) as raised:
        main([*argv, "--modalities", "image"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "--resume: " in err and "holds another run; it differs in" in err
    assert "modalities: stored ['image', 'audio'], now ['image']" in err
    assert "data_checksum: stored" in err
    assert main([*argv, "--modalities", "image,audio"]) == 0  # the same choice resumes
    model, data = load_run(out_dir)  # the run remembers its modalities
    assert modality_names(data) == ["image", "audio"]
    assert model.recommend(torch.arange(3), k=5).shape == (3, 5)


def test_unknown_modality_is_an_error_listing_the_found_ones(three, capsys):
    found = "audio (audio_feat.npy), image (image_feat.npy), text (text_feat.npy)"
    for verb in (["train"], ["tune"], ["experiment", "table2", "--models", "dream"]):
        argv = [*verb, "--dataset", "three", "--data-root", str(three)]
        line = run_error([*argv, "--modalities", "image,video"], capsys)
        assert f"dreamgeo {verb[0]}: error: " in line
        assert "no modality 'video' (no video_feat.npy)" in line
        assert f"modalities found: {found}" in line
    assert sorted(p.name for p in three.iterdir()) == ["three"]  # nothing ran
    line = run_error(["train", "--modalities", "image,image"], capsys)
    assert "image given twice" in line


def test_experiment_passes_the_modalities_on(three, capsys):
    out_root = three / "experiments"
    argv = ["experiment", "table2", "--models", "dream", "--dataset", "three"]
    argv += ["--data-root", str(three), "--modalities", "audio", "--out-root", str(out_root)]
    assert main([*argv, "--report-only"]) == 0
    assert "--dataset three --modalities audio" in (out_root / "table2.md").read_text()


def test_embedded_and_planted_take_the_flag(tmp_path, capsys):
    from dreamgeo.datasets.source import resolve_source

    source = resolve_source(None, str(tmp_path), modalities="text")
    assert source.modalities() == ["text"] and source.available_modalities() == ["image", "text"]
    assert resolve_source(None, str(tmp_path), "tiny", modalities=["text"]).modalities() == ["text"]
    line = run_error(["train", "--preset", "tiny", "--modalities", "audio"], capsys)
    assert "planted 'tiny' preset (seed 0) (modalities audio) has no modality 'audio'" in line
    assert "its modalities: image, text" in line


# ---------------------------------------------------------------- the loader


def test_loader_takes_names_a_mapping_or_one_name(three):
    folder = three / "three"
    assert find_modalities(folder) == {m: f"{m}_feat.npy" for m in ("audio", "image", "text")}
    data = MMRecDataset(three, "three", log=False)[0]
    assert modality_names(data) == ["audio", "image", "text"]
    data = MMRecDataset(three, "three", modalities=["text", "audio"], log=False)[0]
    assert modality_names(data) == ["text", "audio"]
    assert torch.equal(data[ITEM].x_audio, torch.from_numpy(np.load(folder / "audio_feat.npy")))
    data = MMRecDataset(three, "three", modalities="image", log=False)[0]
    assert modality_names(data) == ["image"]
    data = MMRecDataset(three, "three", modalities={"sound": "audio_feat.npy"}, log=False)[0]
    assert modality_names(data) == ["sound"]
    with pytest.raises(FileNotFoundError, match=r"no modality 'video'.*found: audio"):
        MMRecDataset(three, "three", modalities=["video"])
    with pytest.raises(ValueError, match="no modality chosen"):
        MMRecDataset(three, "three", modalities=[])


def test_planted_sidecar_still_names_files_of_any_name(tmp_path):
    folder = write_folder(tmp_path, "toy", {})
    np.save(folder / "vggish.npy", np.ones((60, 3), dtype=np.float32))
    np.save(folder / "image_feat.npy", np.ones((60, 2), dtype=np.float32))
    (folder / "planted.json").write_text(json.dumps({"modalities": {"audio": "vggish.npy"}}))
    assert find_modalities(folder) == {"audio": "vggish.npy"}  # the sidecar wins
    data = MMRecDataset(tmp_path, "toy", modalities=["audio"], log=False)[0]
    assert data[ITEM].x_audio.shape == (60, 3)


def test_folder_without_feature_files(tmp_path):
    folder = write_folder(tmp_path, "bare", {})
    (folder / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError) as raised:
        MMRecDataset(tmp_path, "bare")
    message = str(raised.value)
    assert "no feature files: a modality is a file <name>_feat.npy" in message
    assert "the folder holds: bare.inter, notes.txt" in message
    assert "dreamgeo prepare" in message and "dreamgeo features" in message
    assert "write_planted" not in message and "synthetic" not in message
    data = MMRecDataset(tmp_path, "bare", modalities={}, log=False)[0]  # interactions alone
    assert modality_names(data) == []


def test_missing_file_names_the_found_ones_without_a_synthetic_hint(tmp_path):
    write_folder(tmp_path, "shop", {"image": 4})
    with pytest.raises(FileNotFoundError) as raised:
        MMRecDataset(tmp_path, "shop", modalities={"image": "image_feat.npy", "text": "t.npy"})
    message = str(raised.value)
    assert "is missing t.npy" in message
    assert "feature files found: image (image_feat.npy)" in message
    assert "dreamgeo prepare" in message
    assert "write_planted" not in message and "synthetic" not in message


def test_invalid_file_name_is_named(tmp_path):
    folder = write_folder(tmp_path, "shop", {"image": 4})
    np.save(folder / "clip-text_feat.npy", np.ones((60, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"'clip-text' \(file 'clip-text_feat\.npy'\).*clip_text"):
        MMRecDataset(tmp_path, "shop")
    data = MMRecDataset(tmp_path, "shop", modalities=["image"], log=False)[0]  # not chosen
    assert modality_names(data) == ["image"]


# ---------------------------------------------------------------- the models in Python


def _finite_loss_and_scores(name, dims):
    data = make_random_data(dims=dims)
    torch.manual_seed(0)
    model = build_model(name, data)
    model.train()
    users, pos = data["user", "interacts", "item"].edge_index[:, :16]
    neg = torch.randint(0, data["item"].num_nodes, (16,))
    loss, parts = model.loss(users, pos, neg)
    assert loss.dim() == 0 and torch.isfinite(loss), (name, dims, parts)
    loss.backward()
    model.eval()
    user, item = model.embeddings()
    scores = user @ item.t()
    assert scores.shape == (30, 20) and torch.isfinite(scores).all()


MODALITY_SETS = {
    "one": {"text": 6},
    "one-audio": {"audio": 5},
    "two": {"image": 12, "audio": 5},
    "three": DIMS,
}


@pytest.mark.parametrize("dims", list(MODALITY_SETS), ids=str)
@pytest.mark.parametrize("name", MULTIMODAL)
def test_every_multimodal_model_takes_one_to_three_modalities(name, dims):
    _finite_loss_and_scores(name, MODALITY_SETS[dims])


def test_slmrec_contrasts_a_third_modality_in_the_coarse_space():
    from dreamgeo.models.slmrec import _in_batch_cross_entropy

    torch.manual_seed(0)
    model = build_model("slmrec", make_random_data(dims=DIMS), embedding_dim=8)
    assert len(model.further_coarse) == len(DIMS) - 2
    views, items = model.views(), torch.arange(6)
    fine = model.id_fine(views[0][1][items])
    coarse = model.middle_coarse(model.fine_middle(fine))
    expected = _in_batch_cross_entropy(fine, model.first_fine(views[1][1][items]), model.ssl_tau)
    expected = expected + _in_batch_cross_entropy(
        coarse, model.second_coarse(views[2][1][items]), model.ssl_tau
    )
    expected = expected + _in_batch_cross_entropy(
        coarse, model.further_coarse[0](views[3][1][items]), model.ssl_tau
    )
    torch.testing.assert_close(model.fine_and_coarse(views, items), expected)
