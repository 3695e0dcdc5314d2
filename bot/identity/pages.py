"""The small HTML pages of the linking flow (escaped, no scripts, no external assets)."""

from __future__ import annotations

from html import escape

from bot.identity.service import LinkFailure

AGAIN = "Run <code>/pm link</code> in Slack for a new link."
REASONS: dict[LinkFailure, str] = {
    LinkFailure.STATE_UNKNOWN: f"This link is not valid. {AGAIN}",
    LinkFailure.STATE_USED: f"This link was already used. {AGAIN}",
    LinkFailure.STATE_EXPIRED: f"This link has expired. {AGAIN}",
    LinkFailure.STATE_NOT_STARTED: (
        "This sign-in was not started from a pmbot link. Nothing was linked."
    ),
    LinkFailure.BROWSER_MISMATCH: (
        "This sign-in was started in another browser. Open the link from Slack in this "
        "browser. Nothing was linked."
    ),
    LinkFailure.FORGED_REQUEST: (
        "This request did not come from pmbot's own page, so it was refused and nothing "
        "was linked. Open the link from Slack again and press the button there."
    ),
    LinkFailure.CODE_REJECTED: (
        "Auth0 did not accept this sign-in. Nothing was linked; please try again."
    ),
    LinkFailure.NO_ID_TOKEN: "Auth0 returned no identity token. Nothing was linked.",
    LinkFailure.ID_TOKEN_INVALID: (
        "The identity token from Auth0 could not be verified. Nothing was linked."
    ),
    LinkFailure.IDENTITY_TAKEN: (
        "This Auth0 account is already linked to another Slack user in this workspace. "
        "Unlink it there first (<code>/pm unlink</code>)."
    ),
    LinkFailure.IDENTITY_UNSUPPORTED: (
        "pmbot could not record this Auth0 identity. Nothing was linked; please tell your "
        "pmbot admin."
    ),
    LinkFailure.LOGIN_CANCELLED: "Sign-in was cancelled. Nothing was linked.",
    LinkFailure.MISSING_PARAMETERS: "The sign-in response is incomplete. Nothing was linked.",
}
UNAVAILABLE = (
    "{service} is unreachable right now. Nothing was linked; in a moment, open the same link "
    "from Slack again."
)

SLACK_UNREACHABLE = (
    "You signed in, but Slack could not be reached to ask you to confirm the link, so "
    f"nothing was linked. In a moment, {AGAIN[0].lower()}{AGAIN[1:]}"
)


def reason_text(reason: LinkFailure) -> str:
    return REASONS.get(reason, "Linking failed. Nothing was linked.")


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
    return _page(
        "Link your Slack account to pmbot",
        "<h1>Link your account</h1>"
        f"<p>You are linking the Slack account of <strong data-testid=slack-user>"
        f"{escape(person)}</strong> in the workspace <strong data-testid=slack-workspace>"
        f"{escape(workspace)}</strong> to the account you sign in with next.</p>"
        "<p>Only continue if you are this person and started this from Slack yourself. "
        "After you sign in, Slack asks you to confirm the link.</p>"
        f"<form method=post action='/auth/link/{escape(request_id)}'>"
        f"<input type=hidden name=csrf value='{escape(csrf_token)}'>"
        "<button type=submit data-testid=continue>Continue to sign in</button></form>",
    )


def confirm_in_slack_page(*, who: str) -> str:
    return _page(
        "Confirm in Slack",
        f"<h1 data-testid=signed-in>Signed in as {escape(who)}</h1>"
        "<p data-testid=next-step>One last step: go back to Slack. pmbot sent you a direct "
        "message; press <strong>Link</strong> there to finish. Nothing is linked until "
        "you do.</p>",
    )


def failed_page(text_html: str) -> str:
    return _page("Linking failed", f"<h1>Linking failed</h1><p data-testid=error>{text_html}</p>")
