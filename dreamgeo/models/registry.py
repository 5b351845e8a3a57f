r"""The one registry of dreamgeo's recommenders, filled by the models themselves.

A model file declares its class with :func:`register_model` (its command-line name, its
label in tables, the tables it belongs to, whether it takes the BMA plug-in) and its
hyper-parameters as a class attribute ``HPARAMS`` (:class:`~dreamgeo.hparams.HParams`).
The command line, the experiments, the reports and the tuner read everything from
:data:`MODELS`. Adding a model is one new file in :mod:`dreamgeo.models` plus its import
line in ``dreamgeo/models/__init__.py``.

Import the registry through the package (``from dreamgeo.models import MODELS``) so that
every model module has been imported, and hence registered, first.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from torch_geometric.data import HeteroData

from dreamgeo.datasets.hetero_input import canonical_hetero
from dreamgeo.datasets.schema import INTERACTS
from dreamgeo.hparams import MODEL, TRAIN, HParam, HParamError, HParams
from dreamgeo.models.base import Recommender
from dreamgeo.nn.bma_loss import BMALoss

__all__ = [
    "ModelInfo",
    "MODELS",
    "register_model",
    "get_model",
    "build_model",
    "models_in_table",
    "COMMON_HPARAMS",
    "TRAIN_HPARAMS",
    "BMA_HPARAMS",
    "RUNTIME_OPTIONS",
]

#: Hyper-parameters of every model (a model's own declaration may override them).
COMMON_HPARAMS = HParams(
    [
        HParam(
            "embedding_dim",
            int,
            64,
            "size d of the user and item embeddings (MMRec fixes 64)",
            low=1,
            aliases=("embedding_size",),
        ),
    ]
)

#: Training-protocol settings every model accepts (:class:`~dreamgeo.train.TrainConfig`);
#: a model may declare a grid for ``lr`` where its MMRec grid has one.
TRAIN_HPARAMS = HParams(
    [
        HParam(
            "lr",
            float,
            1e-3,
            "Adam learning rate",
            low=0.0,
            low_open=True,
            aliases=("learning_rate",),
            target=TRAIN,
        ),
        HParam(
            "lr_decay",
            float,
            1.0,
            "learning-rate factor per lr_decay_step epochs (MMRec's learning_rate_scheduler "
            "[lr_decay, lr_decay_step]: epoch t trains at lr x lr_decay^((t-1)/step); 1 = "
            "constant, the paper's)",
            low=0.0,
            low_open=True,
            high=1.0,
            target=TRAIN,
        ),
        HParam(
            "lr_decay_step",
            int,
            50,
            "epochs over which the learning rate falls by one factor lr_decay",
            low=1,
            target=TRAIN,
        ),
        HParam(
            "batch_size",
            int,
            2048,
            "BPR triples per step",
            low=1,
            aliases=("train_batch_size",),
            target=TRAIN,
        ),
        HParam("epochs", int, 1000, "most epochs", low=1, target=TRAIN),
        HParam(
            "patience",
            int,
            20,
            "epochs without a better valid Recall@20 before stopping (stops after exactly "
            "this many; MMRec's stopping_step stops after one more, as it tests cur_step > "
            "stopping_step)",
            low=1,
            aliases=("stopping_step",),
            target=TRAIN,
        ),
        HParam(
            "seed",
            int,
            0,
            "seed of the initialization, the negatives and the batch order",
            low=0,
            target=TRAIN,
        ),
    ]
)


def _plug_in(name: str, **changes: Any) -> HParam:
    # the plug-in's key for one of BMALoss's declarations: its default, type and range
    # stay declared once, in BMALoss.HPARAMS
    return replace(BMALoss.HPARAMS[name], name=f"bma_{name}", requires=("bma", True), **changes)


#: The BMA plug-in (:class:`~dreamgeo.nn.BMALoss`) of the models registered with
#: ``bma_plugin=True``, derived from :attr:`BMALoss.HPARAMS`; weight 0 is in the grid so
#: that a tuner can switch a term off.
BMA_HPARAMS = HParams(
    [
        HParam("bma", bool, False, "add DREAM's Behaviour-Modal Alignment (BMALoss)"),
        _plug_in("tau", grid=None, details=""),
        _plug_in(
            "intra_weight",
            help="BMA's Intra-Alignment weight alpha (0 in the grid: a tuner may switch it off)",
            grid=(0.0, 0.01, 0.03),
        ),
        _plug_in(
            "inter_weight",
            help="BMA's Inter-Alignment weight beta (0 in the grid: a tuner may switch it off)",
            grid=(0.0, 0.01, 0.03),
        ),
    ]
)

#: Options of how a model is computed, not of what it learns (search engines, storage
#: dtype, caches): accepted by the models whose ``from_data`` takes them, an error for
#: the others, never tuned.
RUNTIME_OPTIONS: tuple[str, ...] = ("graph_cache_dir", "knn_mode", "knn_backend", "feature_dtype")


@dataclass(frozen=True)
class ModelInfo:
    r"""What the registry knows of one model.

    Args:
        name (str): Command-line name, e.g. ``"freedom"``.
        cls (type): The :class:`~dreamgeo.models.Recommender` subclass.
        label (str): Its name in tables, e.g. ``"FREEDOM"``.
        tables (tuple[str, ...]): The experiments it is a row of (``"table2"``,
            ``"table4"``).
        bma_plugin (bool): Whether it takes :class:`~dreamgeo.nn.BMALoss` as a plug-in.
        hparams (HParams): Its whole declaration: common, its own, BMA's (if any) and the
            training settings.
        reference (str): The paper it implements.
        position (int, optional): Its row in tables, smaller first. (default: :obj:`100`)
    """

    name: str
    cls: type
    label: str
    tables: tuple[str, ...]
    bma_plugin: bool
    hparams: HParams
    reference: str
    position: int = 100

    @property
    def runtime_options(self) -> tuple[str, ...]:
        r"""The :data:`RUNTIME_OPTIONS` its ``from_data`` accepts."""
        accepted = _accepted(self.cls)
        return tuple(option for option in RUNTIME_OPTIONS if option in accepted)

    def resolve(self, *sources: tuple[str, Mapping[str, Any]]) -> dict[str, Any]:
        r"""Every hyper-parameter's value: the declared defaults, overridden by each
        ``(source name, {key: value})`` in turn (later sources win). Keys may be
        declared names or their aliases (MMRec's names); values may be text.

        Raises:
            HParamError: For a key this model does not take (naming the models that do,
                if any), a key given twice in one source (as name and alias), a value of
                the wrong type or out of range.
        """
        values = self.hparams.defaults()
        for source, mapping in sources:
            given: dict[str, str] = {}
            for key, value in mapping.items():
                name = self.hparams.canonical(str(key))
                if name is None:
                    raise HParamError(unknown_key_message(self, str(key), source))
                if name in given:
                    raise HParamError(
                        f"{source}: {name} is given twice (as '{given[name]}' and '{key}')"
                    )
                given[name] = str(key)
                values[name] = self.hparams[name].parse(value, f"{source}: {self.name}")
        return values

    def build(self, data: HeteroData, values: Mapping[str, Any], **runtime: Any) -> Recommender:
        r"""The model built on ``data`` from resolved hyper-parameter ``values`` (training
        settings among them are ignored here) and runtime options (see
        :data:`RUNTIME_OPTIONS`; :obj:`None` values are dropped)."""
        model_values, _ = self.hparams.split({k: v for k, v in values.items() if k in self.hparams})
        plugin = {name: model_values.pop(name) for name in BMA_HPARAMS if name in model_values}
        runtime = {key: value for key, value in runtime.items() if value is not None}
        refused = sorted(set(runtime) - set(self.runtime_options))
        if "graph_cache_dir" in refused:  # a cache is harmless to offer to any model
            runtime.pop("graph_cache_dir")
            refused.remove("graph_cache_dir")
        if refused:
            raise HParamError(
                f"{self.name} does not take the option(s) {', '.join(refused)} (only "
                f"{', '.join(self.runtime_options) or 'none'})"
            )
        # a checked copy: ids and features are validated before any native code runs,
        # and graphs built for the model never land in the caller's data
        data = canonical_hetero(data, owner=self.label)
        model = self.cls.from_data(data, **model_values, **runtime)
        if model.seen_edge_index is None:
            model.seen_edge_index = data[INTERACTS].edge_index
        if plugin.get("bma"):  # the registry attaches BMA; the model only exposes its rows
            model.bma = BMALoss(
                plugin["bma_tau"], plugin["bma_intra_weight"], plugin["bma_inter_weight"]
            )
        return model


def unknown_key_message(info: ModelInfo, key: str, source: str) -> str:
    r"""The error text for a ``key`` that the model of ``info`` does not take."""
    users = [other.name for other in MODELS.values() if other.hparams.canonical(key) is not None]
    takes = ", ".join(info.hparams)
    if users:
        return (
            f"{source}: {info.name} does not use '{key}' (a hyper-parameter of "
            f"{', '.join(users)}); {info.name} takes: {takes}"
        )
    return f"{source}: unknown hyper-parameter '{key}'; {info.name} takes: {takes}"


#: Model name to its :class:`ModelInfo`, in registration order.
MODELS: dict[str, ModelInfo] = {}


def register_model(
    name: str,
    *,
    label: str,
    tables: tuple[str, ...] = ("table2",),
    bma_plugin: bool = False,
    reference: str = "",
    position: int = 100,
):
    r"""Class decorator that adds a :class:`~dreamgeo.models.Recommender` subclass to
    :data:`MODELS`. The class must define ``HPARAMS`` (its own declarations; the common,
    BMA and training ones are added here) and a ``from_data(data, **hparams)``
    classmethod.

    Args:
        name (str): Command-line name (lower case).
        label (str): Name in tables.
        tables (tuple[str, ...], optional): Experiments it is a row of.
            (default: :obj:`("table2",)`)
        bma_plugin (bool, optional): Takes a ``bma`` argument
            (:class:`~dreamgeo.nn.BMALoss` or :obj:`None`). (default: :obj:`False`)
        reference (str, optional): The paper it implements. (default: :obj:`""`)
        position (int, optional): Its row in tables, smaller first (the paper's order
            of Table 2). (default: :obj:`100`)
    """

    def register(cls: type) -> type:
        if name in MODELS and MODELS[name].cls is not cls:
            raise ValueError(f"register_model: '{name}' is registered twice")
        own = getattr(cls, "HPARAMS", None)
        if not isinstance(own, HParams):
            raise TypeError(f"register_model: {cls.__name__}.HPARAMS must be an HParams")
        hparams = COMMON_HPARAMS + (BMA_HPARAMS if bma_plugin else HParams())
        hparams = TRAIN_HPARAMS + hparams + own
        plugin = set(BMA_HPARAMS)  # attached by build() as one BMALoss
        for param in hparams.params:
            if param.target == MODEL and param.name not in _accepted(cls) | plugin:
                raise TypeError(f"register_model: {cls.__name__}.from_data takes no {param.name}")
        MODELS[name] = ModelInfo(
            name, cls, label, tuple(tables), bma_plugin, hparams, reference, position
        )
        return cls

    return register


def _accepted(cls: type) -> set[str]:
    r"""Argument names that ``cls.from_data`` passes on (its own and, through
    ``**kwargs``, the constructor's)."""
    names = set(inspect.signature(cls.from_data).parameters)
    if "kwargs" in names:
        init = inspect.signature(cls.__init__).parameters
        names |= set(init)
        if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in init.values()):
            names |= set(getattr(cls, "HPARAMS", ()))  # resolved by the constructor
    return names


def get_model(name: str) -> ModelInfo:
    r"""The :class:`ModelInfo` of ``name`` (case-insensitive); :class:`HParamError`
    listing the registered names otherwise."""
    key = name.lower()
    if key not in MODELS:
        raise HParamError(f"Unknown model '{name}'; choose one of {', '.join(MODELS)}")
    return MODELS[key]


def build_model(
    name: str, data: HeteroData, hparams: Mapping[str, Any] | None = None, **kwargs: Any
) -> Recommender:
    r"""The model ``name`` built on ``data``: its declared defaults overridden by
    ``hparams`` and by keyword arguments (declared names or aliases, checked), plus
    runtime options (:data:`RUNTIME_OPTIONS`). A :class:`~dreamgeo.nn.BMALoss` given as
    ``bma=`` is plugged in as it is (models registered with ``bma_plugin=True``).

    Args:
        name (str): Model name, e.g. ``"freedom"``.
        data (HeteroData): The dataset (``DESIGN.md`` section 2).
        hparams (Mapping[str, Any], optional): Hyper-parameter values.
            (default: :obj:`None`, the declared defaults)
        **kwargs: More hyper-parameter values, runtime options (e.g.
            ``graph_cache_dir``) or ``bma=BMALoss(...)``.

    Example:
        >>> model = build_model("lightgcn", data, num_layers=3)  # doctest: +SKIP
        >>> model = build_model("vbpr", data, bma=BMALoss(0.2, 0.01, 0.01))  # doctest: +SKIP
    """
    info = get_model(name)
    plugin = None
    if "bma" in kwargs and (kwargs["bma"] is None or isinstance(kwargs["bma"], BMALoss)):
        plugin = kwargs.pop("bma")  # a ready BMALoss, or None: no plug-in
    if plugin is not None and not info.bma_plugin:
        raise HParamError(f"build_model: {info.name} takes no BMA plug-in")
    runtime = {key: kwargs.pop(key) for key in RUNTIME_OPTIONS if key in kwargs}
    values = info.resolve(("build_model", {**dict(hparams or {}), **kwargs}))
    model = info.build(data, values, **runtime)
    if plugin is not None:
        model.bma = plugin
    return model


def models_in_table(table: str) -> tuple[str, ...]:
    r"""The registered models that are rows of ``table`` (e.g. ``"table2"``), in
    table order (:attr:`ModelInfo.position`)."""
    rows = [info for info in MODELS.values() if table in info.tables]
    return tuple(info.name for info in sorted(rows, key=lambda info: info.position))
