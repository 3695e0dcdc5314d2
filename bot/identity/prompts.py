"""Where a link was shown: the response_urls of the ``/pm`` prompts that carried it, so
they can be replaced once the link is used. A response_url can post into the person's
conversation for 30 minutes, so the list is kept encrypted and forgotten once taken."""

from __future__ import annotations

import json

from bot.identity.crypto import DecryptionError, TokenCipher
from bot.identity.model import valid_request_id
from bot.storage.db import Database
from bot.storage.models import LinkRequest

MAX_PROMPTS = 5


class PromptUrls:
    def __init__(self, *, db: Database, cipher: TokenCipher) -> None:
        self._db = db
        self._cipher = cipher

    def seal(self, request_id: str, urls: list[str]) -> str:
        return self._cipher.encrypt(
            json.dumps(urls[-MAX_PROMPTS:]), purpose=f"prompt_urls|{request_id}"
        )

    def _open(self, request_id: str, sealed: str | None) -> list[str]:
        if not sealed:
            return []
        try:
            urls = json.loads(self._cipher.decrypt(sealed, purpose=f"prompt_urls|{request_id}"))
        except (DecryptionError, ValueError):
            return []
        return [u for u in urls if isinstance(u, str)]

    async def remember(self, request_id: str, prompt_url: str) -> None:
        async with self._db.session() as session:
            request = await session.get(LinkRequest, request_id)
            if request is None:
                return
            urls = self._open(request_id, request.prompt_urls_enc)
            if prompt_url not in urls:
                request.prompt_urls_enc = self.seal(request_id, [*urls, prompt_url])

    async def take(self, request_id: str) -> list[str]:
        """The response_urls of the prompts that showed this link, forgotten as they are
        given (so each prompt is replaced once)."""
        if not valid_request_id(request_id):
            return []
        async with self._db.session() as session:
            request = await session.get(LinkRequest, request_id)
            if request is None:
                return []
            urls = self._open(request_id, request.prompt_urls_enc)
            request.prompt_urls_enc = None
        return urls
