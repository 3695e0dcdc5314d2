"""post_as_me: post a message to a channel as the asker (Slack user token through Token
Vault). The asker must be a member of the channel, and the channel and the text must be
ones the asker wrote in their request.

It needs ``write:projects``: posting is writing to the team in the asker's name (like a
change to a project), not a calendar matter; the Slack connection's own ``chat:write``
scope is asked of the person when they connect."""

from __future__ import annotations

from pydantic import Field

from bot import messages as words
from bot.agent.tool import (
    FailureCode,
    Permission,
    Tool,
    ToolArgs,
    ToolContext,
    ToolFailure,
    ToolResult,
)
from bot.agent.tools._common import SLACK_POST_SCOPES, require_channel_named, written_by_the_asker
from bot.errors import NotInChannel
from bot.vault.ports import Connection


class PostAsMeArgs(ToolArgs):
    channel: str = Field(min_length=1, max_length=100, description="#channel-name")
    text: str = Field(min_length=1, max_length=4000, description="The asker's own words.")


class PostAsMe(Tool[PostAsMeArgs]):
    name = "post_as_me"
    description = (
        "Post the asker's own words to a channel they are a member of, as them. Only text "
        "the asker wrote in their request may be posted."
    )
    Args = PostAsMeArgs
    permission = Permission.WRITE_PROJECTS
    verbs = frozenset({"post"})

    async def run(self, ctx: ToolContext, args: PostAsMeArgs) -> ToolResult:
        services = ctx.services
        if not written_by_the_asker(ctx, args.text):
            raise ToolFailure(FailureCode.NOT_ALLOWED, words.POST_TEXT_NOT_REQUESTED)
        channel = await services.channels.resolve(args.channel)
        require_channel_named(ctx, channel)
        if not await services.channels.is_member(channel.id, ctx.asker.slack_user_id):
            raise NotInChannel(channel.id)
        token = await services.vault.access_token(
            ctx.asker, Connection.SLACK, scopes=SLACK_POST_SCOPES
        )
        posted = await services.slack_as_user.post_message(
            token, channel=channel.id, text=args.text
        )
        return ToolResult(
            data={"channel": channel.id, "ts": posted.ts, "link": posted.permalink},
            text=words.posted_text(channel.id, posted.permalink),
            subject=channel.id,
            link=posted.permalink,
        )
