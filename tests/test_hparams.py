"""Hyper-parameter declarations, the registry and the ways a value reaches a model:
``--set``, ``--config``, flags, the tuner's suggestions; every bad input is refused
with a message naming the key, before anything runs."""

import ast
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch

from dreamgeo.config import load_config, resolve_run, write_config
from dreamgeo.hparams import HParam, HParamError, HParams
from dreamgeo.models import MODELS, build_model, get_model, models_in_table, register_model
from dreamgeo.models.base import Recommender
from dreamgeo.train import TrainConfig
from tests.conftest import make_random_data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ---------------------------------------------------------------- one declaration
def _other_value(param: HParam):
    r"""A valid value of ``param`` other than its default."""
    if param.grid is not None and any(v != param.default for v in param.grid):
        return next(v for v in param.grid if v != param.default)
    if param.choices is not None:
        return next(v for v in param.choices if v != param.default)
    if param.type is bool:
        return not param.default
    if param.type is int:
        return param.default + 1
    value = param.default * 2 if param.default else 0.5
    if param.high is not None and value >= param.high:
        value = (param.default + (param.low or 0.0)) / 2
    return value


def _fingerprint(name, data, values):
    r"""What a built model is: its state (shapes and values) and its loss on a fixed
    batch, both with a fixed seed."""
    torch.manual_seed(0)
    info = get_model(name)
    model = info.build(data, values)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    users = torch.tensor([0, 1, 2, 3, 4, 0])  # repeats, so BMA's distinct negatives show
    pos = torch.tensor([0, 1, 2, 3, 4, 1])
    neg = torch.tensor([6, 7, 8, 9, 10, 11])
    torch.manual_seed(1)
    model.train()
    model.start_epoch(2)  # a key that acts from the second epoch on (bma_decay) shows too
    loss, parts = model.loss(users, pos, neg)
    return state, float(loss.detach()), sorted(parts)


def _differs(one, two) -> bool:
    state_one, loss_one, parts_one = one
    state_two, loss_two, parts_two = two
    if parts_one != parts_two or abs(loss_one - loss_two) > 1e-7:
        return True
    if state_one.keys() != state_two.keys():
        return True
    return any(
        a.shape != b.shape or not torch.equal(a, b)
        for a, b in zip(state_one.values(), state_two.values())
    )


# keys that matter only together with another setting
CONTEXT = {("dream", "ablation_scope"): {"ablation": "no_text_encoder"}}

CASES = [
    (name, key)
    for name, info in MODELS.items()
    for key, param in info.hparams.items()
    if param.target == "model"
]


@pytest.mark.parametrize("name,key", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_every_declared_model_key_reaches_the_model_by_set_config_and_tuner(tmp_path, name, key):
    info = get_model(name)
    param = info.hparams[key]
    value = _other_value(param)
    data = make_random_data(num_users=30, num_items=20, seed=0)
    base = {"embedding_dim": 8}
    if "knn_k" in info.hparams and key != "knn_k":
        base["knn_k"] = 3
    if param.requires is not None:  # e.g. BMA's weights matter only with the plug-in on
        base[param.requires[0]] = param.requires[1]
    if name == "dream" and key != "modal_weighting":
        # random features agree with no interaction: agreement weights would switch S3 off
        base["modal_weighting"] = "fixed"
    base.update(CONTEXT.get((name, key), {}))
    if key == "knn_k":
        value = 4  # below the 20 items of the data, unlike the declared default
    if key == "ablation":
        value = "no_s3"
    if key == "embedding_dim":
        value = 16
    # --set (text), a config file (YAML values) and a tuner trial give the same values
    _, from_set = resolve_run(
        name, assignments=[f"{k}={v}" for k, v in {**base, key: value}.items()]
    )
    path = write_config(tmp_path / "c.yaml", name, {**base, key: value})
    _, from_config = resolve_run(None, config=path)
    in_space = param.grid is not None and value in param.grid
    trial = optuna.trial.FixedTrial({key: value})
    suggested = param.suggest(trial, "grid") if in_space else value
    _, from_tuner = resolve_run(name, flags={**base, key: suggested})
    assert from_set == from_config == from_tuner
    assert from_set[key] == value
    # ... and the value changes the built model
    default = info.resolve(("test", base))
    changed = _differs(_fingerprint(name, data, default), _fingerprint(name, data, from_set))
    assert changed, f"{name}: {key}={value} built the same model as {param.default}"


@pytest.mark.parametrize(
    "key", ["lr", "lr_decay", "lr_decay_step", "batch_size", "epochs", "patience", "seed"]
)
def test_training_keys_reach_the_train_config(key):
    info = get_model("lightgcn")
    value = _other_value(info.hparams[key])
    _, values = resolve_run("lightgcn", assignments=[f"{key}={value}"])
    _, train = info.hparams.split(values)
    config = TrainConfig(**train)
    assert getattr(config, key) == value != getattr(TrainConfig(), key)


def test_mmrec_key_names_are_accepted(tmp_path):
    path = tmp_path / "freedom.yaml"
    path.write_text("model: freedom\nreg_weight: 1.0e-05\nlearning_rate: 0.005\nn_ui_layers: 3\n")
    info, values = resolve_run(None, config=path)
    assert info.name == "freedom"
    assert values["modal_loss_weight"] == 1e-5  # MMRec's FREEDOM reg_weight
    assert values["lr"] == 0.005 and values["num_layers"] == 3
    _, values = resolve_run("mgcn", assignments=["cl_loss=0.1", "n_layers=2"])
    assert values["cl_weight"] == 0.1 and values["num_modal_layers"] == 2


def test_config_round_trip(tmp_path):
    _, values = resolve_run("dream", assignments=["knn_k=7", "s3_weight=0.5"])
    path = write_config(tmp_path / "best.yaml", "dream", values, ["trial 3"])
    assert path.read_text().startswith("# trial 3\n")
    model, loaded = load_config(path)
    assert model == "dream" and loaded == values


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "model,assignment,message",
    [
        ("lightgcn", "foo=1", "unknown hyper-parameter 'foo'"),
        ("lightgcn", "knn_k=5", "lightgcn does not use 'knn_k' (a hyper-parameter of"),
        ("bpr", "num_layers=2", "bpr does not use 'num_layers'"),
        ("lightgcn", "num_layers=0", "num_layers must be >= 1, got 0"),
        ("dream", "num_layers=-1", "num_layers must be >= 1, got -1"),
        ("dream", "knn_k=0", "knn_k must be >= 1, got 0"),
        ("mgcn", "reg_weight=-0.01", "reg_weight must be >= 0, got -0.01"),
        ("lightgcn", "num_layers=two", "num_layers must be an integer, got 'two'"),
        ("lightgcn", "num_layers=2.5", "num_layers must be an integer, got '2.5'"),
        ("freedom", "dropout=1", "dropout must be [0, 1), got 1"),
        ("dream", "use_s3=maybe", "use_s3 must be true or false"),
        ("dream", "ablation=no_gates", "ablation must be one of"),
        ("lightgcn", "lr=0", "lr must be > 0, got 0"),
        ("lightgcn", "lr=nan", "lr must be finite"),
    ],
)
def test_bad_values_and_keys_name_the_key(model, assignment, message):
    with pytest.raises(HParamError, match=re.escape(message)):
        resolve_run(model, assignments=[assignment])


def test_bad_config_files(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: lightgcn\nnum_layers: [1, 2]\n")
    with pytest.raises(HParamError, match="num_layers must be single values"):
        resolve_run(None, config=path)
    path.write_text("model: lightgcn\nnum_layers: true\n")
    with pytest.raises(HParamError, match="num_layers must be an integer"):
        resolve_run(None, config=path)
    path.write_text("model: lightgcn\nn_layers: 2\nnum_layers: 3\n")
    with pytest.raises(HParamError, match="num_layers is given twice"):
        resolve_run(None, config=path)
    path.write_text("model: mgcn\n")
    with pytest.raises(HParamError, match="is for model 'mgcn' but --model is 'dream'"):
        resolve_run("dream", config=path)
    with pytest.raises(HParamError, match="no such file"):
        resolve_run(None, config=tmp_path / "missing.yaml")
    path.write_text("a: [")
    with pytest.raises(HParamError, match="not valid YAML"):
        resolve_run(None, config=path)


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--model", "lightgcn", "--knn-k", "5"], "--knn-k: lightgcn does not use '--knn-k'"),
        (["--model", "mgcn", "--num-layers", "0"], "--num-layers: mgcn: num_layers must be >= 1"),
        (["--model", "mgcn", "--reg-weight", "-1e-2"], "reg_weight must be >= 0, got -0.01"),
        (["--model", "mgcn", "--set", "knn_k"], "expected KEY=VALUE"),
        (["--model", "bpr", "--knn-mode", "ivf"], "--knn-mode: not an option of bpr"),
    ],
)
def test_cli_refuses_before_anything_runs(tmp_path, argv, message):
    out = tmp_path / "run"
    process = subprocess.run(
        [sys.executable, "-m", "dreamgeo.commands", "train", *argv, "--out-dir", str(out)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert process.returncode == 2
    assert message in process.stderr
    assert not out.exists()


def test_experiment_set_is_checked_for_every_run(tmp_path):
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamgeo.commands",
            "experiment",
            "table2",
            "--models",
            "lightgcn,dream",
            "--set",
            "knn_k=5",
            "--out-root",
            str(tmp_path / "exp"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert process.returncode != 0
    assert "lightgcn does not use 'knn_k'" in process.stderr
    assert not (tmp_path / "exp").exists()


def test_list_hparams_prints_the_declaration():
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "dreamgeo.commands",
            "train",
            "--model",
            "freedom",
            "--list-hparams",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "| dropout | float | 0.8 | [0, 1) | grid [0.8, 0.9] |" in process.stdout
    assert (
        "| modal_loss_weight | float | 0.0001 | >= 0 | grid [0, 1e-05, 0.0001, 0.001] "
        "| reg_weight |" in process.stdout
    )


# ---------------------------------------------------------------- declarations
def test_declarations_are_checked():
    with pytest.raises(HParamError, match="must be >= 1, got 0"):
        HParam("k", int, 0, low=1)
    with pytest.raises(HParamError, match="must be >= 0"):
        HParam("w", float, 0.1, low=0.0, grid=(0.1, -1.0))
    param = HParam("w", float, 0.1, low=0.0, grid=(0.1, 0.2), search=(1e-3, 1.0), log=True)
    assert param.space_text() == "grid [0.1, 0.2]; tpe log-[0.001, 1]"
    tpe = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    assert 1e-3 <= param.suggest(tpe.ask(), "tpe") <= 1.0
    grid = optuna.create_study(sampler=optuna.samplers.GridSampler({"w": [0.1, 0.2]}))
    assert param.suggest(grid.ask(), "grid") in (0.1, 0.2)


def test_grids_are_mmrec_s():
    assert get_model("lightgcn").hparams["num_layers"].grid == (1, 2, 3, 4)
    assert get_model("freedom").hparams["dropout"].grid == (0.8, 0.9)
    assert get_model("mgcn").hparams["cl_weight"].grid == (0.001, 0.01, 0.1)
    assert get_model("bm3").hparams.grid_size() == 8
    assert get_model("vbpr").hparams["reg_weight"].grid == (2.0, 1.0, 0.1, 0.01, 1e-3, 1e-4, 1e-5)


def test_a_new_model_is_one_decorated_class():
    class Popularity(Recommender):
        HPARAMS = HParams([HParam("smoothing", float, 1.0, "additive smoothing", low=0.0)])

        def __init__(self, num_users, num_items, counts, embedding_dim=1, smoothing=1.0):
            super().__init__(num_users, num_items)
            self.register_buffer("counts", counts + smoothing)
            self.bias = torch.nn.Parameter(torch.zeros(1))

        @classmethod
        def from_data(cls, data, **kwargs):
            item = data["user", "interacts", "item"].edge_index[1]
            counts = torch.bincount(item, minlength=data["item"].num_nodes).float()
            return cls(data["user"].num_nodes, data["item"].num_nodes, counts, **kwargs)

        def forward(self):
            return torch.ones(self.num_users, 1), self.counts.log().unsqueeze(1) + self.bias

        def objective(self, users, pos_items, neg_items):
            return self.bias.sum() * 0, {}, None

    try:
        register_model("popularity", label="Pop", tables=("table2",), position=5)(Popularity)
        assert models_in_table("table2")[0] == "popularity"
        model = build_model("popularity", make_random_data(), smoothing=2.0)
        assert float(model.counts.min()) >= 2.0
        with pytest.raises(HParamError, match="popularity does not use 'knn_k'"):
            build_model("popularity", make_random_data(), knn_k=3)
    finally:
        MODELS.pop("popularity", None)


# ---------------------------------------------------------------- import graph
def _imports(path: Path, module: str, package: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level]
                base = ".".join([*parts, base] if base else parts)
            found |= {f"{base}.{alias.name}" for alias in node.names} | {base}
    return {name for name in found if name.split(".")[0] == package}


def test_no_import_cycles_and_no_private_cross_module_imports():
    root = REPO / "dreamgeo"
    modules = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(REPO).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    edges = {}
    private = []
    for name, path in modules.items():
        targets = set()
        for target in _imports(
            path, name if path.name != "__init__.py" else name + ".x", "dreamgeo"
        ):
            while target not in modules and "." in target:
                last = target.rsplit(".", 1)[1]
                if last.startswith("_") and not last.startswith("__"):
                    private.append(f"{name} imports {target}")
                target = target.rsplit(".", 1)[0]
            is_own_package = path.name == "__init__.py" and target.startswith(name + ".")
            if target in modules and target != name and not is_own_package:
                targets.add(target)
        edges[name] = targets
    # a cycle is a path back to where it started
    cycles = []
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in edges[node]:
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles
    assert not private, private
