"""The small HTML pages of the linking flow (escaped, no scripts, no external assets)."""

from __future__ import annotations

from html import escape

REASONS = {
    "state_unknown": "This link is not valid. Run <code>/pm link</code> in Slack for a new one.",
    "state_used": "This link was already used. Run <code>/pm link</code> in Slack for a new one.",
    "state_expired": (
        "This link has expired (links last 10 minutes). Run <code>/pm link</code> in Slack "
        "for a new one."
    ),
    "state_not_started": "This sign-in was not started from a pmbot link. Nothing was linked.",
    "browser_mismatch": (
        "This sign-in was started in another browser. Open the link from Slack in this "
        "browser. Nothing was linked."
    ),
    "code_rejected": "Auth0 did not accept this sign-in. Nothing was linked; please try again.",
    "no_id_token": "Auth0 returned no identity token. Nothing was linked.",
    "identity_taken": (
        "This Auth0 account is already linked to another Slack user in this workspace. "
        "Unlink it there first (<code>/pm unlink</code>)."
    ),
    "login_cancelled": "Sign-in was cancelled. Nothing was linked.",
    "missing_parameters": "The sign-in response is incomplete. Nothing was linked.",
}
UNVERIFIED_IDENTITY = "The identity token from Auth0 could not be verified. Nothing was linked."
UNAVAILABLE = (
    "{service} is unreachable right now. Nothing was linked; in a moment, run "
    "<code>/pm link</code> in Slack again for a new link."
)


def reason_text(reason: str) -> str:
    if reason.startswith("id_token_"):
        return UNVERIFIED_IDENTITY
    return REASONS.get(reason, "Linking failed. Nothing was linked.")


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)}</title>"
        "<meta name=viewport content='width=device-width,initial-scale=1'>"
        "<style>body{font-family:system-ui,sans-serif;max-width:34rem;margin:4rem auto;"
        "padding:0 1rem;color:#1d1c1d}button{font-size:1rem;padding:.6rem 1.2rem;"
        "background:#1d3557;color:#fff;border:0;border-radius:6px;cursor:pointer}"
        "code{background:#f4f4f4;padding:0 .2rem}</style></head><body>"
        f"{body}</body></html>"
    )


def confirm_page(*, request_id: str, slack_user: str, team: str) -> str:
    return _page(
        "Link your Slack account to pmbot",
        "<h1>Link your account</h1>"
        f"<p>You are linking the Slack user <strong data-testid=slack-user>{escape(slack_user)}"
        f"</strong> in workspace <strong>{escape(team)}</strong> to the account you sign in "
        "with next. Only continue if you started this from Slack yourself.</p>"
        f"<form method=post action='/auth/link/{escape(request_id)}'>"
        "<button type=submit data-testid=continue>Continue to sign in</button></form>",
    )


def linked_page(*, who: str) -> str:
    return _page(
        "Linked",
        f"<h1 data-testid=linked>Linked as {escape(who)}</h1>"
        "<p>You can close this tab and go back to Slack.</p>",
    )


def failed_page(text_html: str) -> str:
    return _page("Linking failed", f"<h1>Linking failed</h1><p data-testid=error>{text_html}</p>")
