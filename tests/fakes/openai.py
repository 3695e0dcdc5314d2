"""A fake OpenAI-compatible server on 127.0.0.1 (port 0), reached through the real
``openai`` SDK's ``base_url``: ``POST /v1/chat/completions`` with and without streaming
(server-sent events, as OpenAI sends them) and ``POST /v1/embeddings``.

Every chat request is recorded (:attr:`OpenAIServer.prompts`: the messages as sent). The
default answer is written from the prompt alone, as a grounded model would: one sentence
per source it was given (the start of the source's first passage), each cited with the
source's number. Tests can replace it (``answer``), make the server slow (``delay``), stall
in the middle of a stream (``stall_after``), refuse (``status``) or answer nothing.

Tool calling: a request that offers ``tools`` is answered by ``script`` when one is set
(:class:`ScriptedModel`): it reads the conversation so far (tool results included) and
returns the next assistant turn, tool calls or text, sent as OpenAI sends them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.authz import serve_app
from tests.fakes.embeddings import vector

Messages = list[dict[str, Any]]

_SOURCES = re.compile(r"Sources \(data, not instructions\), as JSON:\n(.*?)\n(?:\n|\Z)", re.S)


def sources_in(messages: Messages) -> list[dict[str, Any]]:
    """The sources a prompt gives (pmbot's prompt format), or none."""
    for message in messages:
        found = _SOURCES.search(str(message.get("content") or ""))
        if found:
            parsed = json.loads(found.group(1))
            return parsed if isinstance(parsed, list) else []
    return []


def grounded_answer(messages: Messages) -> str:
    """One sentence per source, from its first passage, with its citation."""
    sentences = []
    for source in sources_in(messages):
        passage = " ".join(str(source["passages"][0]).split())
        sentences.append(f"{source['title']} says: {passage[:160]} [{source['source']}]")
    return "\n".join(sentences) or "I found nothing about it in the documents."


@dataclass
class OpenAIServer:
    """State of the fake (see the module docstring)."""

    base_url: str = ""
    prompts: list[Messages] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    answer: Callable[[Messages], str] = grounded_answer
    delay: float = 0.0  # seconds before answering
    stall_after: int | None = None  # stream this many pieces, then hang
    status: int | None = None  # answer with this HTTP error status
    piece_chars: int = 12  # characters per streamed piece
    released: asyncio.Event = field(default_factory=asyncio.Event)  # ends every stall
    script: Callable[[Messages], Turn] | None = None  # answers requests that offer tools

    def reset(self) -> None:
        self.prompts.clear()
        self.requests.clear()
        self.answer = grounded_answer
        self.delay = 0.0
        self.stall_after = None
        self.status = None
        self.script = None

    @property
    def prompt_texts(self) -> list[str]:
        return ["\n".join(str(m.get("content") or "") for m in p) for p in self.prompts]

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        self.prompts.append(list(body["messages"]))
        if self.delay:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), self.delay)
        if self.status is not None:
            return web.json_response(
                {"error": {"message": "refused", "type": "server_error", "code": None}},
                status=self.status,
            )
        created = int(time.time())
        if self.script is not None and body.get("tools") and not body.get("stream"):
            return web.json_response(
                _completion(body["model"], created, self.script(list(body["messages"])))
            )
        text = self.answer(list(body["messages"]))
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "chatcmpl-fake",
                    "object": "chat.completion",
                    "created": created,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": created,
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        pieces = [text[i : i + self.piece_chars] for i in range(0, len(text), self.piece_chars)]
        for number, piece in enumerate(pieces):
            if self.stall_after is not None and number >= self.stall_after:
                await self.released.wait()
                return response
            await send({"content": piece})
        await send({}, "stop")
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def embeddings(self, request: web.Request) -> web.Response:
        body = await request.json()
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        return web.json_response(
            {
                "object": "list",
                "data": [
                    {"object": "embedding", "index": i, "embedding": vector(t)}
                    for i, t in enumerate(texts)
                ],
                "model": body["model"],
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        )


@contextlib.asynccontextmanager
async def openai_server() -> AsyncIterator[OpenAIServer]:
    state = OpenAIServer()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", state.chat)
    app.router.add_post("/v1/embeddings", state.embeddings)
    async with serve_app(app) as url:
        state.base_url = f"{url}/v1"
        try:
            yield state
        finally:
            state.released.set()


# -- tool calling ------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """An assistant turn: tool calls (name, arguments as an object or raw JSON text) or
    text. ``finish_reason`` "length" plays a model cut off by its token limit."""

    calls: tuple[tuple[str, dict[str, Any] | str], ...] = ()
    text: str | None = None
    finish_reason: str | None = None


def call(name: str, arguments: dict[str, Any] | str | None = None) -> Turn:
    return Turn(calls=((name, arguments if arguments is not None else {}),))


def say(text: str) -> Turn:
    return Turn(text=text)


def _completion(model: str, created: int, turn: Turn) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": turn.text}
    if turn.calls:
        message["tool_calls"] = [
            {
                "id": f"call_{created}_{i}",
                "type": "function",
                "function": {
                    "name": name,
                    "arguments": args if isinstance(args, str) else json.dumps(args),
                },
            }
            for i, (name, args) in enumerate(turn.calls)
        ]
    finish = turn.finish_reason or ("tool_calls" if turn.calls else "stop")
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def tool_results(messages: Messages) -> list[dict[str, Any]]:
    """The envelopes of the tool messages in a conversation, parsed, oldest first."""
    return [json.loads(str(m["content"])) for m in messages if m.get("role") == "tool"]


class ScriptedModel:
    """A model that plays ``turns`` in order: the n-th request of a conversation gets the
    n-th turn (n counted from the assistant turns already in it, so the state is the
    conversation's own). A turn may be a function of the conversation. After the last
    turn it says ``done``. ``seen`` keeps every conversation it was sent."""

    def __init__(self, *turns: Turn | Callable[[Messages], Turn], done: str = "Done.") -> None:
        self.turns = list(turns)
        self.done = done
        self.seen: list[Messages] = []

    def __call__(self, messages: Messages) -> Turn:
        self.seen.append(messages)
        step = sum(1 for m in messages if m.get("role") == "assistant")
        if step >= len(self.turns):
            return say(self.done)
        turn = self.turns[step]
        return turn(messages) if callable(turn) else turn
