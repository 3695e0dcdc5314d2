"""The small HTML pages of the connect flow (escaped, no scripts, no external assets)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from bot import messages as words


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;"
        "padding:0 1rem;color:#1d1c1d;overflow-wrap:anywhere}button{font-size:1rem;"
        "padding:.6rem 1.2rem;background:#1d3557;color:#fff;border:0;border-radius:6px;"
        "cursor:pointer}code{background:#f4f4f4;padding:0 .2rem}"
        "ul{color:#454245;font-size:.9rem}</style></head><body>"
        f"{body}</body></html>"
    )


def connect_page(
    *,
    request_id: str,
    connection: str,
    person: str,
    workspace: str,
    scopes: Sequence[str],
    csrf_token: str,
) -> str:
    account = words.CONNECTION_NAMES.get(connection, connection)
    provider = words.CONNECTION_PROVIDERS.get(connection, account)
    whom = words.connect_whom(
        escape(account),
        f"<strong data-testid=slack-user>{escape(person)}</strong>",
        f"<strong data-testid=slack-workspace>{escape(workspace)}</strong>",
    )
    items = "".join(f"<li><code>{escape(s)}</code></li>" for s in scopes)
    return _page(
        words.CONNECT_PAGE_TITLE,
        f"<h1 data-testid=connect-heading>{escape(words.connect_heading(account))}</h1>"
        f"<p>{whom}</p><p>{escape(words.CONNECTION_USES.get(connection, ''))}</p>"
        f"<p>{escape(words.CONNECT_SCOPES_INTRO)}</p><ul data-testid=scopes>{items}</ul>"
        f"<p>{escape(words.CONNECT_WARNING)}</p>"
        f"<form method=post action='/connect/{escape(request_id)}'>"
        f"<input type=hidden name=csrf value='{escape(csrf_token)}'>"
        f"<button type=submit data-testid=continue>"
        f"{escape(words.CONNECT_CONTINUE.format(provider=provider))}</button></form>",
    )


def connected_page(*, connection: str, resumes: bool) -> str:
    account = words.CONNECTION_NAMES.get(connection, connection)
    next_step = words.CONNECT_RESUMES if resumes else words.CONNECT_CLOSE
    return _page(
        words.connected_heading(account),
        f"<h1 data-testid=connected>{escape(words.connected_heading(account))}</h1>"
        f"<p data-testid=next-step>{escape(next_step)}</p>",
    )


def failed_page(text_html: str) -> str:
    title = escape(words.CONNECT_FAILED_TITLE)
    return _page(
        words.CONNECT_FAILED_TITLE, f"<h1>{title}</h1><p data-testid=error>{text_html}</p>"
    )
