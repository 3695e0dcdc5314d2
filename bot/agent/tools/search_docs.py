"""search_docs: passages of the documents the asker may view (exact authorized top-k)."""

from __future__ import annotations

from pydantic import Field

from bot import messages as words
from bot.agent.tool import Permission, Tool, ToolArgs, ToolContext, ToolResult

PASSAGE_CHARS = 700


class SearchDocsArgs(ToolArgs):
    query: str = Field(min_length=1, max_length=500, description="What to look for.")
    k: int = Field(default=5, ge=1, le=10, description="How many passages.")


class SearchDocs(Tool[SearchDocsArgs]):
    name = "search_docs"
    description = (
        "Search the project documents the asker may read. Returns passages with their "
        "document title; cite the titles."
    )
    Args = SearchDocsArgs
    permission = Permission.READ_PROJECTS
    changes = False

    async def run(self, ctx: ToolContext, args: SearchDocsArgs) -> ToolResult:
        # Only the asker's own view: the audience of a channel never widens it, and a
        # channel reply built from it goes to the asker alone.
        found = await ctx.services.knowledge.search(
            args.query, viewers=[ctx.asker.fga_user], k=args.k
        )
        passages = [
            {
                "document_id": p.document_id,
                "title": p.title,
                "heading": p.heading,
                "text": p.text[:PASSAGE_CHARS],
            }
            for p in found
        ]
        text = words.search_result_lines([(p.title, p.text) for p in found])
        return ToolResult(data={"passages": passages}, text=text)
