"""HTML of the authenticator page (escaped by hand, no scripts): a phone authenticator's
screen for the seeded people of the dev identity provider."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from sandbox.idp.models import IdpUser

_STYLE = """
body{font-family:system-ui,sans-serif;background:#1d1c1d;margin:0;padding:1.5rem 1rem;
color:#1d1c1d}
.phone{max-width:24rem;margin:0 auto;background:#f7f7fb;border-radius:28px;
padding:1.4rem 1.2rem 1.6rem;box-shadow:0 8px 30px rgba(0,0,0,.45);min-height:32rem}
.brand{display:flex;align-items:center;gap:.5rem;font-weight:700;color:#635dff;
font-size:.95rem;margin-bottom:1rem}.brand .dot{width:.8rem;height:.8rem;border-radius:50%;
background:#635dff}
h1{font-size:1.25rem;margin:.2rem 0 .8rem}.note{color:#616061;font-size:.85rem}
.who{display:flex;justify-content:space-between;align-items:center;font-size:.9rem;
background:#fff;border-radius:12px;padding:.6rem .8rem;margin-bottom:1rem}
.card{background:#fff;border-radius:16px;padding:1rem;margin:.8rem 0;
box-shadow:0 1px 4px rgba(0,0,0,.12)}
.app{font-size:.85rem;color:#616061}.app strong{color:#1d1c1d}
.code{font-family:ui-monospace,monospace;font-size:1.35rem;font-weight:700;
letter-spacing:.02em;margin:.5rem 0;word-break:break-word}
.meta{font-size:.8rem;color:#616061;margin-bottom:.8rem}
.actions{display:flex;gap:.6rem}.actions form{flex:1}
.actions button{width:100%;padding:.7rem;border-radius:10px;border:0;font-size:1rem;
font-weight:600;cursor:pointer}
.approve{background:#007a5a;color:#fff}.deny{background:#e8e8ec;color:#b00020}
.users form{margin:.4rem 0}.users button{width:100%;text-align:left;padding:.7rem;
border:1px solid #d0d0d8;border-radius:12px;background:#fff;cursor:pointer}
.users button:hover{background:#eef}.small{font-size:.8rem;color:#616061}
.flash{background:#e3f6ee;color:#005e46;border-radius:10px;padding:.6rem .8rem;
font-size:.9rem}.flash.gone{background:#fdecec;color:#8a0016}
.error{color:#b00020;font-weight:600}.link{background:none;border:0;color:#635dff;
text-decoration:underline;cursor:pointer;font-size:.85rem;padding:0}
.empty{text-align:center;color:#616061;padding:2rem .5rem}
"""

#: What a finished action says at the top of the page (keys are the ``done`` values).
FLASHES = {
    "approved": ("Approved. The application can go ahead.", ""),
    "denied": ("Denied. The application was told no.", " gone"),
    "gone": (
        "That request is no longer waiting for you (answered, expired or not yours).",
        " gone",
    ),
    "signed-out": ("Signed out.", ""),
}


@dataclass(frozen=True)
class PendingView:
    """One pending request as the page shows it."""

    auth_req_id: str
    app: str
    binding_message: str
    scope: str
    expires_at: float


def _page(title: str, body: str, *, refresh: int | None = None) -> str:
    # Reload the page itself without its ?done= note, so the note shows once.
    meta = f"<meta http-equiv='refresh' content='{refresh};url=authenticator'>" if refresh else ""
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"{meta}<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        "<body><main class='phone'><div class='brand'><span class='dot'></span>"
        f"Authenticator</div>{body}</main></body></html>"
    )


def _hidden(csrf: str, **fields: str) -> str:
    parts = [f"<input type='hidden' name='csrf' value='{escape(csrf)}'>"]
    parts += [
        f"<input type='hidden' name='{escape(k)}' value='{escape(v)}'>" for k, v in fields.items()
    ]
    return "".join(parts)


def sign_in_page(
    *, csrf: str, users: Sequence[IdpUser], error: str | None = None, flash: str | None = None
) -> str:
    """The sign-in screen: one button per seeded person and an email/password form, all
    posting to the page itself with ``action=sign-in`` and the anti-forgery token."""
    buttons = "".join(
        "<form method='post' action='authenticator'>"
        f"{_hidden(csrf, action='sign-in', email=user.email, password=user.password)}"
        f"<button type='submit' data-testid='auth-sign-in-as-{escape(user.email)}'>"
        f"<strong>{escape(user.name)}</strong><br>"
        f"<span class='small'>{escape(user.email)}</span></button></form>"
        for user in users
    )
    error_html = (
        f"<p class='error' role='alert' data-testid='auth-error'>{escape(error)}</p>"
        if error
        else ""
    )
    body = (
        f"{_flash(flash)}<h1>Sign in to approve requests</h1>"
        "<p class='note'>When an application such as pmbot asks you to confirm something, "
        "the request appears here, as on your phone.</p>"
        f"{error_html}<section class='users'>{buttons}</section>"
        "<form method='post' action='authenticator' data-testid='auth-sign-in-form'>"
        f"{_hidden(csrf, action='sign-in')}"
        "<p class='small'>Or with a password:</p>"
        "<input type='email' name='email' required autocomplete='username' "
        "aria-label='Email' placeholder='Email' data-testid='auth-email'> "
        "<input type='password' name='password' required autocomplete='current-password' "
        "aria-label='Password' placeholder='Password' data-testid='auth-password'> "
        "<button type='submit' class='link' data-testid='auth-sign-in'>Sign in</button></form>"
        "<p class='small'>Dev identity provider: these accounts exist for local development "
        "only.</p>"
    )
    return _page("Authenticator · sign in", body)


def requests_page(
    *,
    csrf: str,
    user: IdpUser,
    pending: Sequence[PendingView],
    flash: str | None = None,
    now: float | None = None,
) -> str:
    """The signed-in screen: the person's pending requests with their binding message,
    the requesting application and Approve / Deny. While nothing waits the page reloads
    itself every 5 seconds (a meta refresh: the page runs no script)."""
    now = time.time() if now is None else now
    cards = []
    for item in pending:
        left = max(0, int(item.expires_at - now))
        cards.append(
            f"<section class='card' data-testid='auth-request' "
            f"data-binding-message='{escape(item.binding_message)}'>"
            f"<div class='app'><strong>{escape(item.app)}</strong> asks you to confirm</div>"
            f"<div class='code' data-testid='auth-binding-message'>"
            f"{escape(item.binding_message)}</div>"
            f"<div class='meta'>Check that this matches what the application shows. "
            f"Access: <code>{escape(item.scope)}</code> · expires in "
            f"{left // 60} min {left % 60:02d} s</div>"
            "<div class='actions'>"
            "<form method='post' action='authenticator'>"
            f"{_hidden(csrf, action='approve', request=item.auth_req_id)}"
            "<button class='approve' type='submit' data-testid='auth-approve'>Approve</button>"
            "</form><form method='post' action='authenticator'>"
            f"{_hidden(csrf, action='deny', request=item.auth_req_id)}"
            "<button class='deny' type='submit' data-testid='auth-deny'>Deny</button>"
            "</form></div></section>"
        )
    listing = "".join(cards) or (
        "<p class='empty' data-testid='auth-empty'>Nothing to approve right now.<br>"
        "<span class='small'>This page checks again every few seconds.</span></p>"
    )
    body = (
        f"<div class='who'><span data-testid='auth-signed-in-as'>"
        f"<strong>{escape(user.name)}</strong><br><span class='small'>{escape(user.email)}"
        "</span></span><form method='post' action='authenticator'>"
        f"{_hidden(csrf, action='sign-out')}"
        "<button type='submit' class='link' data-testid='auth-sign-out'>Sign out</button>"
        f"</form></div>{_flash(flash)}<h1>Pending requests</h1>{listing}"
    )
    return _page("Authenticator", body, refresh=None if pending else 5)


def refused_page(reason: str) -> str:
    body = (
        "<h1>Request refused</h1>"
        f"<p class='error' data-testid='auth-refused'>{escape(reason)}</p>"
        "<p><a href='authenticator'>Back to the authenticator</a></p>"
    )
    return _page("Authenticator · refused", body)


def _flash(key: str | None) -> str:
    if key is None or key not in FLASHES:
        return ""
    text, extra = FLASHES[key]
    return f"<p class='flash{extra}' role='status' data-testid='auth-flash'>{escape(text)}</p>"
