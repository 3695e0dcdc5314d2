"""Dense vectors from an OpenAI-compatible embeddings endpoint (``POST /embeddings``),
through the ``openai`` SDK (its ``base_url`` reaches any compatible server)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Final, Protocol

import numpy as np
import numpy.typing as npt
import openai

log = logging.getLogger(__name__)

Vectors = npt.NDArray[np.float32]

DEFAULT_BASE_URL: Final = "https://api.openai.com/v1"


class EmbeddingsUnavailable(Exception):
    """The endpoint could not give the vectors (down, refused, or an answer that does not
    fit the request)."""


class Embedder(Protocol):
    async def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit-length row per text, in order; :class:`EmbeddingsUnavailable` on
        failure."""
        ...


def normalize_rows(vectors: Vectors) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalized: Vectors = (vectors / norms).astype(np.float32, copy=False)
    return normalized


class OpenAIEmbedder:
    """:class:`Embedder` over ``openai.AsyncOpenAI``; sends at most ``batch`` texts per
    request. Close it with :meth:`aclose`."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        timeout: float = 30.0,
        batch: int = 128,
        max_retries: int = 2,
    ) -> None:
        self.model = model
        self._batch = max(1, batch)
        # Both passed explicitly: the SDK would otherwise read its own environment variables.
        self._client = openai.AsyncOpenAI(
            base_url=base_url or DEFAULT_BASE_URL,
            # A local endpoint may need no key; the SDK requires one.
            api_key=api_key or "unused",
            timeout=timeout,
            max_retries=max_retries,
        )

    async def embed(self, texts: Sequence[str]) -> Vectors:
        rows: list[list[float]] = []
        for start in range(0, len(texts), self._batch):
            # The API refuses empty strings.
            batch = [t if t.strip() else "." for t in texts[start : start + self._batch]]
            try:
                response = await self._client.embeddings.create(
                    model=self.model, input=batch, encoding_format="float"
                )
            except openai.OpenAIError as exc:
                raise EmbeddingsUnavailable(f"embeddings endpoint: {type(exc).__name__}") from exc
            data = sorted(response.data, key=lambda item: item.index)
            if len(data) != len(batch):
                raise EmbeddingsUnavailable(
                    f"embeddings endpoint answered {len(data)} vectors for {len(batch)} texts"
                )
            rows.extend(list(item.embedding) for item in data)
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        if len({len(r) for r in rows}) != 1 or not rows[0]:
            raise EmbeddingsUnavailable("embeddings endpoint answered vectors of mixed sizes")
        return normalize_rows(np.asarray(rows, dtype=np.float32))

    async def aclose(self) -> None:
        await self._client.close()
