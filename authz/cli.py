"""What the ``pmbot fga ...`` subcommands do (argument parsing lives in ``bot.cli``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from sqlalchemy.ext.asyncio import AsyncEngine

from authz.embedded.engine import EmbeddedEngine
from authz.embedded.model import AuthorizationModel, model_from_json, model_to_json
from authz.factory import AuthzConfig, load_model, openfga_target
from authz.ports import (
    AuthzError,
    AuthzUnavailable,
    AuthzValidationError,
    Consistency,
    ErrorCode,
)


async def fga_push(config: AuthzConfig, *, engine: AsyncEngine) -> str:
    """Writes the model at ``config.model_path`` to the configured store and returns the
    model id. Nothing is written when the store's latest model is the same definition (its
    id is returned). The embedded store is created if needed; an OpenFGA store must exist
    (``fga_store_id``)."""
    model = await load_model(config.model_path)
    if config.engine == "openfga":
        return await _push_openfga(config, model)
    embedded = EmbeddedEngine(engine=engine, sync_interval=0)
    try:
        store, _ = await embedded.find_or_create_store(config.store_name)
        model_id, _ = await embedded.ensure_model(store.id, model)
    finally:
        await embedded.close()
    return model_id


async def fga_check(
    config: AuthzConfig, *, engine: AsyncEngine, user: str, relation: str, object: str
) -> bool:
    """One check against the configured store (with ``HIGHER_CONSISTENCY``, bypassing any
    cache), with its latest model (or ``fga_model_id`` for openfga). Raises the port's
    errors; an embedded store that does not exist yet is a validation error."""
    if config.engine == "openfga":
        from authz.openfga import OpenFgaAuthorizer

        api_url, store_id = openfga_target(config)
        async with OpenFgaAuthorizer.open(
            api_url=api_url,
            store_id=store_id,
            model_id=config.fga_model_id,
            api_token=config.fga_api_token,
            timeout_ms=config.timeout_ms,
        ) as remote:
            return await remote.check(
                user, relation, object, consistency=Consistency.HIGHER_CONSISTENCY
            )
    embedded = EmbeddedEngine(engine=engine, sync_interval=0)
    try:
        stores = [s for s in await embedded.list_stores() if s.name == config.store_name]
        if not stores:
            raise AuthzValidationError(
                ErrorCode.store_id_not_found,
                f"there is no authorization store named '{config.store_name}' "
                "(`pmbot fga push` creates it)",
            )
        return await embedded.authorizer(stores[0].id).check(
            user, relation, object, consistency=Consistency.HIGHER_CONSISTENCY
        )
    finally:
        await embedded.close()


def fga_conformance(path: Path, out: TextIO) -> int:
    """Runs OpenFGA's conformance matrix at ``path`` against the embedded engine, printing
    every failure and then ``N passed, M failed`` to ``out``; 0 if nothing failed."""
    from authz.testing.conformance import main_conformance

    return main_conformance(path, out)


# --------------------------------------------------------------------------------------------
# openfga
# --------------------------------------------------------------------------------------------


async def _push_openfga(config: AuthzConfig, model: AuthorizationModel) -> str:
    from authz.openfga import push_model

    api_url, store_id = openfga_target(config)
    latest = await _latest_openfga_model(config, api_url, store_id)
    if latest is not None and latest[1] == model:
        return latest[0]
    return await push_model(api_url, store_id, config.fga_api_token, model_to_json(model))


async def _latest_openfga_model(
    config: AuthzConfig, api_url: str, store_id: str
) -> tuple[str, AuthorizationModel | None] | None:
    """``(id, model)`` of the store's latest model (model None if it cannot be evaluated
    here, e.g. it uses conditions), or None if the store has no model."""
    from openfga_sdk import ClientConfiguration, OpenFgaClient
    from openfga_sdk.credentials import CredentialConfiguration, Credentials

    # The SDK's generated classes are untyped.
    make_config: Any = ClientConfiguration
    make_client: Any = OpenFgaClient
    credentials: Any = None
    if config.fga_api_token:
        make_credentials: Any = Credentials
        make_token: Any = CredentialConfiguration
        credentials = make_credentials(
            method="api_token", configuration=make_token(api_token=config.fga_api_token)
        )
    client: Any = make_client(
        make_config(
            api_url=api_url.rstrip("/"),
            store_id=store_id,
            credentials=credentials,
            timeout_millisec=config.timeout_ms,
        )
    )
    try:
        response = await client.read_latest_authorization_model()
    except Exception as exc:
        raise AuthzUnavailable(
            f"OpenFGA read of the latest authorization model failed: {exc.__class__.__name__}"
        ) from exc
    finally:
        await client.close()
    found = response.authorization_model
    if found is None:
        return None
    try:
        return str(found.id), model_from_json(found.to_dict(serialize=True))
    except AuthzError:
        return str(found.id), None
