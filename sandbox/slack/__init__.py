"""A local, stateful Slack workspace: Web API emulator, signed event delivery and a web page.

The bot's embedded default talks to it instead of real Slack (``slack_sdk`` with
``base_url=<sandbox>/api/``), and the tests use it as their Slack. See docs/sandbox-api.md.
"""

from .common import SandboxError
from .core import SANDBOX_KEY, SlackSandbox
from .delivery import sign
from .team import SandboxSeed, SandboxUser, default_seed

__all__ = [
    "SANDBOX_KEY",
    "SandboxError",
    "SandboxSeed",
    "SandboxUser",
    "SlackSandbox",
    "default_seed",
    "sign",
]
