"""The stores' authorization models: stored in SQL as canonical JSON text, parsed once per
process and kept by ``(store_id, model_id)`` (a model never changes once written).

A store's latest model is the one with the greatest id (ULIDs sort by creation). It is taken
from the store's in-memory copy (:mod:`authz.embedded.replication`) when that copy is
current, from the database otherwise.
"""

from __future__ import annotations

import json

from authz.embedded.model import AuthorizationModel, model_from_json, model_to_json
from authz.embedded.replication import StoreCopies, StoreState
from authz.embedded.sqlstore import SqlStore, StoreNotFoundError
from authz.embedded.ulid import new_ulid
from authz.ports import AuthzError, AuthzEvaluationError, AuthzValidationError, ErrorCode


class ModelStore:
    """Writes, reads and caches the authorization models of every store."""

    def __init__(self, sql: SqlStore, copies: StoreCopies) -> None:
        self.sql = sql
        self._copies = copies
        self._models: dict[tuple[str, str], AuthorizationModel] = {}

    def forget_store(self, store_id: str) -> None:
        """Drops the cached models of a deleted store."""
        for key in [k for k in self._models if k[0] == store_id]:
            del self._models[key]

    async def write_model(self, store_id: str, model: AuthorizationModel) -> str:
        """Stores ``model`` as the store's newest model; returns its new id."""
        model_id = new_ulid()
        await self.sql.insert_model(store_id, model_id, _model_text(model))
        self._remember_model(store_id, model_id, model)
        return model_id

    async def ensure_model(self, store_id: str, model: AuthorizationModel) -> tuple[str, bool]:
        """Stores ``model`` unless the store's latest model is the same definition;
        ``(model_id, written)``."""

        def same(text: str) -> bool:
            try:
                return _model_from_text(text) == model
            except AuthzError:
                return False

        model_id, written = await self.sql.insert_model_unless_latest(
            store_id, new_ulid(), _model_text(model), same
        )
        self._remember_model(store_id, model_id, model)
        return model_id, written

    def _remember_model(self, store_id: str, model_id: str, model: AuthorizationModel) -> None:
        self._models[(store_id, model_id)] = model
        self._copies.note_model(store_id, model_id)

    async def read_model(
        self, store_id: str, model_id: str | None = None
    ) -> tuple[str, AuthorizationModel]:
        """``(id, model)``: the given model, or the store's latest when ``model_id`` is None."""
        if model_id is None:
            model_id = await self.latest_model_id(store_id)
        return model_id, await self.load_model(store_id, model_id)

    async def list_models(self, store_id: str) -> list[tuple[str, AuthorizationModel]]:
        """Every model of the store, newest first."""
        if await self.sql.get_store(store_id) is None:
            raise StoreNotFoundError(store_id)
        out: list[tuple[str, AuthorizationModel]] = []
        for model_id, text in await self.sql.list_models(store_id):
            model = self._models.get((store_id, model_id))
            if model is None:
                model = self._models[(store_id, model_id)] = _model_from_text(text)
            out.append((model_id, model))
        return out

    async def latest_model_id(self, store_id: str) -> str:
        """The id of the store's latest model (``latest_authorization_model_not_found`` when
        it has none)."""
        state = self._copies.get(store_id)
        if state is not None and state.loaded and not self._copies.is_stale(state):
            latest = state.latest_model_id
        else:
            exists, latest = await self.sql.store_status(store_id)
            if not exists:
                raise StoreNotFoundError(store_id)
        if latest is None:
            raise AuthzValidationError(
                ErrorCode.latest_authorization_model_not_found,
                f"No authorization models found for store '{store_id}'",
            )
        return latest

    async def load_model(self, store_id: str, model_id: str) -> AuthorizationModel:
        """The model ``model_id`` of the store (``authorization_model_not_found`` if none)."""
        model = self._models.get((store_id, model_id))
        if model is not None:
            return model
        text = await self.sql.get_model(store_id, model_id)
        if text is None:
            raise AuthzValidationError(
                ErrorCode.authorization_model_not_found,
                f"Authorization Model '{model_id}' not found",
            )
        model = self._models[(store_id, model_id)] = _model_from_text(text)
        return model

    async def model_for(
        self, state: StoreState, model_id: str | None
    ) -> tuple[str, AuthorizationModel]:
        """The model a query on a freshly caught-up store runs against."""
        if model_id is None:
            model_id = state.latest_model_id
            if model_id is None:
                raise AuthzValidationError(
                    ErrorCode.latest_authorization_model_not_found,
                    f"No authorization models found for store '{state.store_id}'",
                )
        return model_id, await self.load_model(state.store_id, model_id)


def _model_text(model: AuthorizationModel) -> str:
    return json.dumps(model_to_json(model), separators=(",", ":"), sort_keys=True)


def _model_from_text(text: str) -> AuthorizationModel:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise AuthzEvaluationError("a stored authorization model is not valid JSON") from exc
    return model_from_json(doc)
