"""What Slack sends the app, in Slack's formats: Events API envelopes and the events the
sandbox produces, slash command forms and ``block_actions`` payloads."""

from __future__ import annotations

import base64
import copy
import json
import re
import secrets
import time

from .common import JsonDict, random_id
from .conversations import Conversation, StoredMessage
from .presentation import render
from .state import Workspace
from .team import SandboxUser

# Slack still sends its deprecated verification token in payloads; it is not a secret.
VERIFICATION_TOKEN = "sandbox-verification-token"  # noqa: S105


def event_envelope(ws: Workspace, event: JsonDict) -> JsonDict:
    """An ``event_callback`` carrying ``event``, with a new ``event_id``."""
    context = json.dumps({"tid": ws.team_id, "aid": ws.app_id}).encode()
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "context_team_id": ws.team_id,
        "context_enterprise_id": None,
        "api_app_id": ws.app_id,
        "event": event,
        "type": "event_callback",
        "event_id": random_id("Ev", 10),
        "event_time": int(time.time()),
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": ws.team_id,
                "user_id": ws.bot.id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": False,
        "event_context": "4-" + base64.urlsafe_b64encode(context).decode().rstrip("="),
    }


def message_event(ws: Workspace, conv: Conversation, stored: StoredMessage) -> JsonDict | None:
    """The event a person's message gives the bot: ``message`` in a DM with it,
    ``app_mention`` where it is mentioned; None when the bot is not told (not a member, or
    not mentioned in a channel)."""
    bot = ws.bot.id
    if bot not in conv.members:
        return None
    data = stored.data
    event: JsonDict = {
        "user": data["user"],
        "type": "message",
        "ts": stored.ts,
        "client_msg_id": data.get("client_msg_id"),
        "text": data["text"],
        "team": ws.team_id,
        "channel": conv.id,
        "event_ts": stored.ts,
    }
    if "thread_ts" in data:
        event["thread_ts"] = data["thread_ts"]
        event["parent_user_id"] = data.get("parent_user_id")
    if conv.is_im:
        event["channel_type"] = "im"
        return event
    if re.search(rf"<@{re.escape(bot)}(\|[^>]*)?>", data["text"]):
        event["type"] = "app_mention"
        return event
    return None


def app_home_opened(user: SandboxUser, dm: Conversation, view: JsonDict | None) -> JsonDict:
    event: JsonDict = {
        "type": "app_home_opened",
        "user": user.id,
        "channel": dm.id,
        "tab": "home",
        "event_ts": f"{time.time():.6f}",
    }
    if view is not None:
        event["view"] = copy.deepcopy(view)
    return event


def assistant_thread_started(
    user: SandboxUser, dm: Conversation, root: StoredMessage, context: JsonDict
) -> JsonDict:
    """A person opened the app's assistant pane: a new thread in their DM with the app."""
    return {
        "type": "assistant_thread_started",
        "assistant_thread": {
            "user_id": user.id,
            "context": copy.deepcopy(context),
            "channel_id": dm.id,
            "thread_ts": root.ts,
        },
        "event_ts": f"{time.time():.6f}",
    }


def command_form(
    ws: Workspace,
    user: SandboxUser,
    conv: Conversation,
    command: str,
    text: str,
    response_url: str,
) -> dict[str, str]:
    """The form fields of a slash command request."""
    return {
        "token": VERIFICATION_TOKEN,
        "team_id": ws.team_id,
        "team_domain": ws.domain,
        "channel_id": conv.id,
        "channel_name": ws.channel_name(conv),
        "user_id": user.id,
        "user_name": user.name,
        "command": command,
        "text": text,
        "api_app_id": ws.app_id,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": _trigger_id(),
    }


def message_block_actions(
    ws: Workspace,
    user: SandboxUser,
    conv: Conversation,
    found: StoredMessage,
    block: JsonDict,
    element: JsonDict,
    response_url: str,
) -> JsonDict:
    """A click on a button in a message. ``message`` is left out for ephemeral messages,
    as Slack does."""
    ephemeral = found.visible_to is not None
    thread = found.data.get("thread_ts")
    payload: JsonDict = {
        "type": "block_actions",
        "user": _user_ref(ws, user),
        "api_app_id": ws.app_id,
        "token": VERIFICATION_TOKEN,
        "container": {
            "type": "message",
            "message_ts": found.ts,
            "channel_id": conv.id,
            "is_ephemeral": ephemeral,
        },
        "trigger_id": _trigger_id(),
        "team": {"id": ws.team_id, "domain": ws.domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": conv.id, "name": ws.channel_name(conv)},
        "state": {"values": {}},
        "response_url": response_url,
        "actions": [_action(block, element)],
    }
    if thread:
        payload["container"]["thread_ts"] = thread
    if not ephemeral:
        payload["message"] = render(conv, found)
    return payload


def home_block_actions(
    ws: Workspace, user: SandboxUser, view: JsonDict, block: JsonDict, element: JsonDict
) -> JsonDict:
    """A click on a button in the user's App Home (a view container)."""
    return {
        "type": "block_actions",
        "user": _user_ref(ws, user),
        "api_app_id": ws.app_id,
        "token": VERIFICATION_TOKEN,
        "container": {"type": "view", "view_id": view["id"]},
        "trigger_id": _trigger_id(),
        "team": {"id": ws.team_id, "domain": ws.domain},
        "enterprise": None,
        "is_enterprise_install": False,
        "view": copy.deepcopy(view),
        "state": {"values": {}},
        "actions": [_action(block, element)],
    }


def _trigger_id() -> str:
    return f"{int(time.time())}.{secrets.randbelow(10**12)}.{secrets.token_hex(16)}"


def _user_ref(ws: Workspace, user: SandboxUser) -> JsonDict:
    return {
        "id": user.id,
        "username": user.name,
        "name": user.name,
        "team_id": ws.team_id,
    }


def _action(block: JsonDict, element: JsonDict) -> JsonDict:
    action: JsonDict = {
        "action_id": element["action_id"],
        "block_id": block["block_id"],
        "text": element.get("text"),
        "type": "button",
        "action_ts": f"{time.time():.6f}",
    }
    if "value" in element:
        action["value"] = element["value"]
    if "style" in element:
        action["style"] = element["style"]
    return action
