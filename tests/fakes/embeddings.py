"""A small OpenAI-compatible embeddings server on 127.0.0.1 (``POST /v1/embeddings``),
reached through the real ``openai`` SDK's ``base_url``.

Vectors are bags of *concepts*: each word is mapped through :data:`CONCEPTS` (so "car" and
"automobile" are the same concept) and hashed into :data:`DIMENSIONS` dimensions, so texts
about the same things are close without sharing words.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import re
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes.authz import serve_app

DIMENSIONS = 64
CONCEPTS = {
    "car": "vehicle",
    "cars": "vehicle",
    "automobile": "vehicle",
    "automobiles": "vehicle",
    "vehicle": "vehicle",
    "budget": "money",
    "cost": "money",
    "costs": "money",
    "spending": "money",
    "money": "money",
}


def vector(text: str) -> list[float]:
    values = [0.0] * DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        concept = CONCEPTS.get(word, word)
        slot = int.from_bytes(hashlib.sha256(concept.encode()).digest()[:4], "big") % DIMENSIONS
        values[slot] += 1.0
    return values


@dataclass
class EmbeddingsServer:
    """State of the fake: ``requests`` counts calls, ``inputs`` every text embedded;
    ``down`` answers 503."""

    base_url: str = ""
    requests: int = 0
    inputs: list[str] = field(default_factory=list)
    down: bool = False

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self.down:
            return web.json_response({"error": {"message": "down", "type": "server"}}, status=503)
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        self.inputs.extend(texts)
        data = []
        for index, text in enumerate(texts):
            values = vector(text)
            embedding: object = values
            if body.get("encoding_format") == "base64":
                embedding = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )


@contextlib.asynccontextmanager
async def embeddings_server() -> AsyncIterator[EmbeddingsServer]:
    state = EmbeddingsServer()
    app = web.Application()
    app.router.add_post("/v1/embeddings", state.handle)
    async with serve_app(app) as url:
        state.base_url = f"{url}/v1"
        yield state
