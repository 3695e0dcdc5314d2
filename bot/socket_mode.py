"""Socket Mode: Slack deliveries over a WebSocket instead of HTTP.

Each envelope is acknowledged at once and its payload handed to the same
:class:`bot.ingress.SlackIngress` as HTTP deliveries (de-duplication, the Bolt app, the
shutdown drain). Socket Mode payloads are the same objects Slack would post over HTTP,
already parsed and with no signature.
"""

from __future__ import annotations

import logging

from slack_sdk.socket_mode.aiohttp import SocketModeClient
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse
from slack_sdk.web.async_client import AsyncWebClient

from bot.ingress import SlackIngress, bolt_request

log = logging.getLogger(__name__)

DELIVERY_TYPES = frozenset({"events_api", "slash_commands", "interactive"})


class SocketModeReceiver:
    def __init__(
        self, *, app_token: str, ingress: SlackIngress, web_client: AsyncWebClient | None = None
    ) -> None:
        self._ingress = ingress
        self._client = SocketModeClient(app_token=app_token, web_client=web_client)
        self._client.socket_mode_request_listeners.append(self._on_request)  # type: ignore[arg-type]

    async def _on_request(self, client: SocketModeClient, req: SocketModeRequest) -> None:
        await client.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
        if req.type not in DELIVERY_TYPES or not isinstance(req.payload, dict):
            return
        try:
            request = bolt_request(req.payload)
        except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
            log.info("dropped a Socket Mode %s of the wrong shape: %s", req.type, exc)
            return
        self._ingress.submit(request)

    async def connect(self) -> None:
        await self._client.connect()  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self._client.close()  # type: ignore[no-untyped-call]
