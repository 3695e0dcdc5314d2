"""HTML pages of the dev identity provider (login and error), escaped by hand."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from sandbox.idp.models import IdpUser

_STYLE = """
body{font-family:system-ui,sans-serif;background:#f4f5f7;margin:0;padding:2rem;color:#1d1c1d}
main{max-width:28rem;margin:0 auto;background:#fff;border-radius:8px;padding:2rem;
box-shadow:0 1px 4px rgba(0,0,0,.15)}
h1{font-size:1.3rem;margin-top:0}.note{color:#616061;font-size:.85rem}
.users form{margin:.4rem 0}.users button{width:100%;text-align:left;padding:.6rem;
border:1px solid #ccc;border-radius:6px;background:#fafafa;cursor:pointer}
.users button:hover{background:#eef}.perm{color:#616061;font-size:.8rem}
label{display:block;margin-top:.6rem;font-size:.9rem}
input[type=email],input[type=password]{width:100%;padding:.5rem;box-sizing:border-box}
.primary{margin-top:1rem;padding:.6rem 1rem;background:#635dff;color:#fff;border:0;
border-radius:6px;cursor:pointer}.error{color:#b00020;font-weight:600}
.cancel{background:none;border:0;color:#616061;text-decoration:underline;cursor:pointer}
main,p,li,h1{overflow-wrap:anywhere}code{overflow-wrap:anywhere;word-break:break-all}
ul{padding-left:1.2rem}
.choices{display:flex;align-items:center;gap:1rem;margin-top:1rem}.choices .primary{margin:0}
@media (max-width:480px){body{padding:.6rem}main{padding:1.2rem}}
"""


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def login_page(
    *,
    tx_id: str,
    client_id: str,
    scope: Sequence[str],
    users: Sequence[IdpUser],
    error: str | None = None,
    email: str = "",
) -> str:
    """The Universal Login stand-in: one button per seeded user plus a password form.

    Every form posts to ``authorize/login`` (relative, so the page works wherever the
    provider is mounted) with the transaction id ``tx``.
    """
    tx = f"<input type='hidden' name='tx' value='{escape(tx_id)}'>"
    buttons = []
    for user in users:
        permissions = ", ".join(user.permissions) or "no permissions"
        buttons.append(
            "<form method='post' action='authorize/login'>"
            f"{tx}<input type='hidden' name='email' value='{escape(user.email)}'>"
            f"<input type='hidden' name='password' value='{escape(user.password)}'>"
            f"<button type='submit' data-testid='login-as-{escape(user.email)}'>"
            f"<strong>{escape(user.name)}</strong> &lt;{escape(user.email)}&gt;<br>"
            f"<span class='perm'>{escape(permissions)} · password "
            f"<code>{escape(user.password)}</code></span></button></form>"
        )
    error_html = (
        f"<p class='error' role='alert' data-testid='login-error'>{escape(error)}</p>"
        if error
        else ""
    )
    body = (
        "<h1>Log in to pmbot</h1>"
        f"<p class='note'>Dev identity provider · application <code>{escape(client_id)}</code>"
        f" asks for <code>{escape(' '.join(scope))}</code>.</p>"
        f"{error_html}"
        "<section class='users'><p>Continue as a seeded user:</p>"
        f"{''.join(buttons)}</section>"
        "<hr><form method='post' action='authorize/login' data-testid='login-form'>"
        f"{tx}<label>Email<input type='email' name='email' required autocomplete='username'"
        f" value='{escape(email)}' data-testid='login-email'></label>"
        "<label>Password<input type='password' name='password' required"
        " autocomplete='current-password' data-testid='login-password'></label>"
        "<button class='primary' type='submit' data-testid='login-submit'>Continue</button>"
        "</form>"
        "<form method='post' action='authorize/login'>"
        f"{tx}<input type='hidden' name='action' value='cancel'>"
        "<button class='cancel' type='submit' data-testid='login-cancel'>Cancel</button></form>"
        "<p class='note'>These accounts and passwords exist for local development only.</p>"
    )
    return _page("Log in · pmbot dev identity provider", body)


def error_page(error: str, description: str) -> str:
    """Shown instead of redirecting when the redirect target cannot be trusted."""
    body = (
        "<h1>Oops! Something went wrong</h1>"
        f"<p class='error' data-testid='idp-error'>{escape(error)}</p>"
        f"<p data-testid='idp-error-description'>{escape(description)}</p>"
    )
    return _page("Error · pmbot dev identity provider", body)


def consent_page(
    *, ticket: str, provider: str, slack: bool, person: str, account: str, scopes: Sequence[str]
) -> str:
    """The provider's authorization screen of the Connected Accounts flow (Google's or
    Slack's, played by the sandbox) for the person the connect ticket was made for."""
    question = (
        "Allow pmbot to post to Slack as you?"
        if slack
        else "Allow pmbot to manage your Google Calendar?"
    )
    ticket_field = f"<input type='hidden' name='ticket' value='{escape(ticket)}'>"
    items = "".join(f"<li><code>{escape(s)}</code></li>" for s in scopes)
    body = (
        f"<p class='note'>{escape(provider)} · sandbox</p>"
        f"<h1 data-testid='consent-question'>{escape(question)}</h1>"
        f"<p>Signed in to {escape(provider)} as <strong data-testid='consent-account'>"
        f"{escape(account)}</strong> ({escape(person)}).</p>"
        f"<p>pmbot asks for:</p><ul data-testid='consent-scopes'>{items}</ul>"
        "<div class='choices'><form method='post' action='connect'>"
        f"{ticket_field}<input type='hidden' name='decision' value='allow'>"
        "<button class='primary' type='submit' data-testid='consent-allow'>Allow</button></form>"
        "<form method='post' action='connect'>"
        f"{ticket_field}<input type='hidden' name='decision' value='deny'>"
        "<button class='cancel' type='submit' data-testid='consent-deny'>Deny</button></form>"
        "</div>"
        f"<p class='note'>The sandbox stands in for {escape(provider)}: nothing leaves this "
        "machine.</p>"
    )
    return _page(f"{provider} · connect pmbot", body)
