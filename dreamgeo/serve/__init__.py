r"""Trained models out of the library: :func:`export_model` (representations, original
ids, seen items, a FAISS item index and a manifest), :func:`load_export` (read back with
every file checked), :func:`recommend_batches` (top-:math:`k` for every user in bounded
memory), :class:`RecommendationWriter` (TSV, CSV, JSON lines, Parquet) and
:func:`create_app` (the FastAPI service of ``dreamgeo serve``; FastAPI is imported only
when it is called)."""

from dreamgeo.serve.arrays import MemoryRows, NpyRows, RowSource
from dreamgeo.serve.batch import SEARCH_METHODS, RecommendationBatch, UnseenTopK, recommend_batches
from dreamgeo.serve.export import EXPORTABLE_MODELS, check_exportable, export_arrays, export_model
from dreamgeo.serve.exported import ExportedModel, ExportError, load_export
from dreamgeo.serve.ids import IdMap, UnknownIdError, original_ids, read_id_mapping
from dreamgeo.serve.index import INDEX_KINDS, build_item_index, index_recall, recall_queries
from dreamgeo.serve.service import create_app
from dreamgeo.serve.writers import OUTPUT_FORMATS, RecommendationWriter

__all__ = [
    "EXPORTABLE_MODELS",
    "INDEX_KINDS",
    "OUTPUT_FORMATS",
    "SEARCH_METHODS",
    "ExportError",
    "ExportedModel",
    "IdMap",
    "MemoryRows",
    "NpyRows",
    "RecommendationBatch",
    "RecommendationWriter",
    "RowSource",
    "UnknownIdError",
    "UnseenTopK",
    "build_item_index",
    "check_exportable",
    "create_app",
    "export_arrays",
    "export_model",
    "index_recall",
    "load_export",
    "original_ids",
    "read_id_mapping",
    "recall_queries",
    "recommend_batches",
]
