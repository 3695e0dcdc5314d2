"""The chat model that writes answers: any OpenAI-compatible ``/chat/completions`` endpoint,
through the real ``openai`` SDK (``AsyncOpenAI(base_url=...)``).

Every call is bounded: the whole answer, from the request to its last token, must arrive
within ``timeout`` seconds (``ANSWER_TIMEOUT``), whatever the endpoint does (slow first
token, a stream that stalls). A failure of any kind is one exception,
:class:`ModelUnavailable`, whose ``failure`` says which; nothing of the endpoint's error
text (which may echo the request) is kept.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import openai

from bot.knowledge.embeddings import DEFAULT_BASE_URL

log = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant"]


class ModelFailure(enum.StrEnum):
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"  # the endpoint answered with an error status
    EMPTY = "empty"  # it answered, with no text


class ModelUnavailable(Exception):
    """The chat model could not give an answer in time."""

    def __init__(self, failure: ModelFailure) -> None:
        super().__init__(failure.value)
        self.failure = failure


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str


class ChatModel(Protocol):
    def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        """The answer's text, piece by piece as the model writes it;
        :class:`ModelUnavailable` (possibly after some pieces) on failure."""
        ...

    async def complete(self, messages: Sequence[ChatMessage]) -> str:
        """The whole answer at once; :class:`ModelUnavailable` on failure."""
        ...


def _failure(exc: BaseException) -> ModelFailure:
    if isinstance(exc, TimeoutError | openai.APITimeoutError):
        return ModelFailure.TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return ModelFailure.UNREACHABLE
    return ModelFailure.REFUSED


class OpenAIChat:
    """:class:`ChatModel` over ``openai.AsyncOpenAI``. Close it with :meth:`aclose`."""

    def __init__(
        self,
        *,
        model: str,
        base_url: str | None,
        api_key: str | None,
        timeout: float,
        max_tokens: int,
    ) -> None:
        self.model = model
        self._timeout = timeout
        self._max_tokens = max_tokens
        # Both passed explicitly: the SDK would otherwise read its own environment variables.
        # No retries: a retry would not fit in the time an answer is given anyway.
        self._client = openai.AsyncOpenAI(
            base_url=base_url or DEFAULT_BASE_URL,
            api_key=api_key or "unused",  # a local endpoint may need none; the SDK wants one
            timeout=timeout,
            max_retries=0,
        )

    def _request(self, messages: Sequence[ChatMessage]) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            "temperature": 0,
            "max_tokens": self._max_tokens,
        }

    async def stream(self, messages: Sequence[ChatMessage]) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout

        def left() -> float:
            return max(0.0, deadline - loop.time())

        response: Any = None
        wrote = False
        try:
            response = await asyncio.wait_for(
                self._client.chat.completions.create(**self._request(messages), stream=True),
                left(),
            )
            pieces = response.__aiter__()
            while True:
                try:
                    chunk = await asyncio.wait_for(anext(pieces), left())
                except StopAsyncIteration:
                    break
                for choice in chunk.choices or ():
                    text = choice.delta.content if choice.delta is not None else None
                    if text:
                        wrote = True
                        yield text
        except (TimeoutError, openai.OpenAIError) as exc:
            failure = _failure(exc)
            log.warning("the chat model failed: %s (%s)", failure.value, type(exc).__name__)
            raise ModelUnavailable(failure) from None
        finally:
            if response is not None:
                await response.close()
        if not wrote:
            raise ModelUnavailable(ModelFailure.EMPTY)

    async def complete(self, messages: Sequence[ChatMessage]) -> str:
        try:
            response = await asyncio.wait_for(
                self._client.chat.completions.create(**self._request(messages)), self._timeout
            )
        except (TimeoutError, openai.OpenAIError) as exc:
            failure = _failure(exc)
            log.warning("the chat model failed: %s (%s)", failure.value, type(exc).__name__)
            raise ModelUnavailable(failure) from None
        text = response.choices[0].message.content if response.choices else None
        if not isinstance(text, str) or not text:
            raise ModelUnavailable(ModelFailure.EMPTY)
        return text

    async def aclose(self) -> None:
        await self._client.close()
