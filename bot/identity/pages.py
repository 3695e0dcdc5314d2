"""The small HTML pages of the linking flow (escaped, no scripts, no external assets)."""

from __future__ import annotations

from html import escape

from bot import messages as words
from bot.identity.model import LinkFailure


def reason_text(reason: LinkFailure) -> str:
    return words.PAGE_REASONS.get(reason, words.PAGE_FAILED)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;"
        "padding:0 1rem;color:#1d1c1d;overflow-wrap:anywhere}button{font-size:1rem;"
        "padding:.6rem 1.2rem;background:#1d3557;color:#fff;border:0;border-radius:6px;"
        "cursor:pointer}code{background:#f4f4f4;padding:0 .2rem}</style></head><body>"
        f"{body}</body></html>"
    )


def confirm_page(*, request_id: str, person: str, workspace: str, csrf_token: str) -> str:
    whom = words.page_linking_whom(
        f"<strong data-testid=slack-user>{escape(person)}</strong>",
        f"<strong data-testid=slack-workspace>{escape(workspace)}</strong>",
    )
    return _page(
        words.PAGE_CONFIRM_TITLE,
        f"<h1>{escape(words.PAGE_CONFIRM_HEADING)}</h1><p>{whom}</p>"
        f"<p>{escape(words.PAGE_CONFIRM_WARNING)}</p>"
        f"<form method=post action='/auth/link/{escape(request_id)}'>"
        f"<input type=hidden name=csrf value='{escape(csrf_token)}'>"
        f"<button type=submit data-testid=continue>{escape(words.PAGE_CONTINUE)}</button></form>",
    )


def confirm_in_slack_page(*, who: str) -> str:
    return _page(
        words.PAGE_SIGNED_IN_TITLE,
        f"<h1 data-testid=signed-in>{words.page_signed_in(escape(who))}</h1>"
        f"<p data-testid=next-step>{words.PAGE_NEXT_STEP}</p>",
    )


def failed_page(text_html: str) -> str:
    title = escape(words.PAGE_FAILED_TITLE)
    return _page(words.PAGE_FAILED_TITLE, f"<h1>{title}</h1><p data-testid=error>{text_html}</p>")
