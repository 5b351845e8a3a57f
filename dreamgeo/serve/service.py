r"""The HTTP JSON service of an export, on FastAPI (run by uvicorn with
``dreamgeo serve``).

Endpoints (ids are the original ids, as text):

* ``GET /recommend?user=ID&k=20``: ``{"user": ID, "k": k, "items": [{"item": ID,
  "score": s}, ...]}``, the user's best unseen items, best first;
* ``POST /recommend`` with ``{"users": [ID, ...], "k": 20}``:
  ``{"k": k, "results": [<one GET answer per user>, ...]}``;
* ``GET /similar?item=ID&k=20``: ``{"item": ID, "k": k, "items": [...]}``, the items of
  largest inner product with the item's row, the item itself excluded;
* ``GET /health``: ``{"status": "ok", "num_users": M, "num_items": N}``;
* ``GET /metadata``: the export's manifest.

An unknown user or item is a 404 whose ``detail`` names the id; a ``k`` outside
:math:`[1, N]` (:math:`[1, N - 1]` for ``/similar``), a batch of more than
``max_batch`` users or an empty one is a 422. Requests carry ids and numbers only:
no file path, nothing unpickled.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations at
# run time, and the request model is local to create_app
from typing import Any

import numpy as np

from dreamgeo.serve.batch import UnseenTopK
from dreamgeo.serve.exported import ExportedModel
from dreamgeo.serve.ids import UnknownIdError

__all__ = ["create_app", "require_serve_packages", "SERVE_INSTALL_HINT"]

SERVE_INSTALL_HINT = 'pip install "dreamgeo[serve]"'


def require_serve_packages() -> None:
    r"""Imports FastAPI and uvicorn, or raises :class:`ImportError` naming the extra
    that installs them."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"dreamgeo serve needs FastAPI and uvicorn ({error.name} is missing): "
            f"{SERVE_INSTALL_HINT}"
        ) from None


def create_app(
    exported: ExportedModel,
    max_batch: int = 1000,
    method: str = "index",
    default_k: int = 20,
) -> Any:
    r"""A FastAPI application answering top-:math:`k` queries on :obj:`exported`.

    Args:
        exported (ExportedModel): The export, best read with ``in_memory=True``.
        max_batch (int, optional): Most users in one ``POST /recommend``.
            (default: :obj:`1000`)
        method (str, optional): ``"index"`` (the export's FAISS index: exact for a
            ``flat`` export) or ``"matmul"`` (an exact product with every item).
            (default: :obj:`"index"`)
        default_k (int, optional): :math:`k` when a request names none (capped at
            :math:`N`). (default: :obj:`20`)

    Returns:
        A :class:`fastapi.FastAPI` application.

    Raises:
        ImportError: Without FastAPI, naming ``pip install "dreamgeo[serve]"``.
    """
    require_serve_packages()
    from fastapi import FastAPI, HTTPException, Query
    from pydantic import BaseModel, Field

    num_items = exported.num_items
    default_k = max(1, min(default_k, num_items))
    ranker = UnseenTopK(
        exported.item_embeddings, exported.index if method == "index" else None, method
    )
    similar_ranker = UnseenTopK(exported.item_embeddings, ranker.index, method)

    class BatchRequest(BaseModel):
        users: list[str] = Field(min_length=1, max_length=max_batch)
        k: int = Field(default_k, ge=1, le=num_items)

    def lookup(ids: list[str], kind: str) -> np.ndarray:
        try:
            if kind == "user":
                return exported.user_map.to_internal(ids)
            return exported.item_map.to_internal(ids)
        except UnknownIdError as error:
            raise HTTPException(status_code=404, detail=str(error)) from None

    def answers(users: np.ndarray, k: int) -> list[dict[str, Any]]:
        items, scores = ranker.search(exported.user_rows(users), exported.seen(users), k)
        user_ids = exported.user_map.to_original(users).tolist()
        return [
            {"user": user, "k": k, "items": _listed(exported, row, value)}
            for user, row, value in zip(user_ids, items, scores)
        ]

    app = FastAPI(
        title="dreamgeo recommendations",
        version=str(exported.manifest.get("dreamgeo_version", "")),
        description=f"top-k of an exported {exported.manifest.get('model', 'model')}",
    )

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "num_users": exported.num_users,
            "num_items": exported.num_items,
        }

    @app.get("/metadata")
    def metadata() -> dict[str, Any]:
        return exported.manifest

    @app.get("/recommend")
    def recommend(
        user: str = Query(..., description="original user id"),
        k: int = Query(default_k, ge=1, le=num_items),
    ) -> dict[str, Any]:
        return answers(lookup([user], "user"), k)[0]

    @app.post("/recommend")
    def recommend_batch(request: BatchRequest) -> dict[str, Any]:
        return {"k": request.k, "results": answers(lookup(request.users, "user"), request.k)}

    @app.get("/similar")
    def similar(
        item: str = Query(..., description="original item id"),
        k: int = Query(min(default_k, max(1, num_items - 1)), ge=1, le=max(1, num_items - 1)),
    ) -> dict[str, Any]:
        internal = lookup([item], "item")
        if num_items < 2:
            raise HTTPException(status_code=422, detail="the catalogue has a single item")
        query = exported.item_embeddings[internal]
        items, scores = similar_ranker.search(query, (np.zeros(1, np.int64), internal), k)
        return {"item": item, "k": k, "items": _listed(exported, items[0], scores[0])}

    return app


def _listed(exported: ExportedModel, items: np.ndarray, scores: np.ndarray) -> list[dict]:
    valid = ~np.isneginf(scores)
    ids = exported.item_map.to_original(items[valid]).tolist()
    return [{"item": i, "score": float(s)} for i, s in zip(ids, scores[valid].tolist())]
