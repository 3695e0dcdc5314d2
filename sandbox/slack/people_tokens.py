"""User tokens (``xoxp-``): Web API calls made as a person of the workspace.

The sandbox accepts the user tokens the shared :class:`~sandbox.federation.Federation`
issued for the Slack connection (the connected account is the person's Slack user id), the
way Slack accepts the tokens it issued when a person installed an app. A message posted
with one is the person's own: its ``user`` is theirs, it has no ``bot_id`` and the page shows
it under their name. The person must be a member of the channel (``not_in_channel``; a DM or
channel they cannot see is ``channel_not_found``) and the token must carry ``chat:write``
(``missing_scope``). Methods a user token may call: :data:`USER_METHODS`; any other answers
``not_allowed_token_type``. An unknown or expired token is ``invalid_auth``.

``chat.getPermalink`` is here too (bot and user tokens): its links lead to the sandbox page.
"""

from __future__ import annotations

from collections.abc import Callable

from sandbox.federation import ConnectedAccount, Federation

from .blocks import parse_blocks
from .common import JsonDict, SandboxError
from .conversations import Conversation, StoredMessage
from .params import opt_str
from .presentation import render
from .state import Workspace
from .team import SandboxUser

SLACK_CONNECTION = "sign-in-with-slack"
USER_METHODS = frozenset({"auth.test", "chat.postMessage", "chat.getPermalink"})
POST_SCOPE = "chat:write"


class PersonTokens:
    """Resolves user tokens to people and runs the methods they may call."""

    def __init__(
        self, workspace: Workspace, federation: Federation, connection: str = SLACK_CONNECTION
    ) -> None:
        self.ws = workspace
        self.federation = federation
        self.connection = connection
        # Messages posted as people since the last take (for event delivery).
        self._posted: list[tuple[Conversation, StoredMessage]] = []

    def resolve(self, token: str) -> tuple[SandboxUser, ConnectedAccount] | None:
        """The person a live user token speaks for, or None (not a user token of ours,
        expired, another connection's, or someone no longer in the workspace)."""
        if not token.startswith("xoxp-"):
            return None
        account = self.federation.resolve(token)
        if account is None or account.connection != self.connection:
            return None
        user = self.ws.users.get(account.account)
        if user is None or user.is_bot:
            return None
        return user, account

    def call(
        self, method: str, person: SandboxUser, account: ConnectedAccount, p: JsonDict
    ) -> JsonDict:
        if method not in USER_METHODS:
            raise SandboxError("not_allowed_token_type")
        if method == "auth.test":
            return {
                "ok": True,
                "url": f"https://{self.ws.domain}.slack.com/",
                "team": self.ws.team_name,
                "user": person.name,
                "team_id": self.ws.team_id,
                "user_id": person.id,
                "is_enterprise_install": False,
            }
        if method == "chat.getPermalink":
            raise AssertionError("chat.getPermalink is answered by permalink()")
        return self._post(person, account, p)

    def _post(self, person: SandboxUser, account: ConnectedAccount, p: JsonDict) -> JsonDict:
        if POST_SCOPE not in account.scopes:
            raise SandboxError(
                "missing_scope",
                extra={"needed": POST_SCOPE, "provided": ",".join(sorted(account.scopes))},
            )
        conv = self.ws.conversation(opt_str(p, "channel") or "", actor=person.id)
        if person.id not in conv.members:
            raise SandboxError("not_in_channel")
        text = p.get("text")
        if text is not None and not isinstance(text, str):
            text = str(text)
        blocks = parse_blocks(p.get("blocks"))
        if not text and not blocks:
            raise SandboxError("no_text")
        stored = self.ws.add_message(
            conv,
            user_id=person.id,
            text=text or "",
            blocks=blocks,
            thread_ts=opt_str(p, "thread_ts"),
        )
        self._posted.append((conv, stored))
        return {"ok": True, "channel": conv.id, "ts": stored.ts, "message": render(conv, stored)}

    def take_posted(self) -> list[tuple[Conversation, StoredMessage]]:
        taken, self._posted = self._posted, []
        return taken


def permalink(
    ws: Workspace, caller: SandboxUser, p: JsonDict, public_url: Callable[[], str | None]
) -> JsonDict:
    """``chat.getPermalink``: a link to a message that ``caller`` can see."""
    conv = ws.conversation(opt_str(p, "channel") or "", actor=caller.id, create_im=False)
    ts = opt_str(p, "message_ts")
    if not ts or ws.find(conv, ts, viewer=None) is None:
        raise SandboxError("message_not_found")
    base = public_url() or f"https://{ws.domain}.slack.com/"
    return {
        "ok": True,
        "channel": conv.id,
        "permalink": f"{base}archives/{conv.id}/p{ts.replace('.', '')}",
    }
