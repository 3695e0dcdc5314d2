"""What the installed app declares in its Slack app manifest (``manifest.yml``)."""

from __future__ import annotations

from pathlib import Path

import yaml

#: The app manifest at the root of the repository.
APP_MANIFEST = Path(__file__).resolve().parents[2] / "manifest.yml"


def manifest_commands(path: Path = APP_MANIFEST) -> tuple[str, ...]:
    """The slash commands the manifest declares (``features.slash_commands[].command``)."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    features = doc.get("features") if isinstance(doc, dict) else None
    declared = features.get("slash_commands") if isinstance(features, dict) else None
    commands: list[str] = []
    for item in declared or []:
        if isinstance(item, dict) and isinstance(item.get("command"), str):
            commands.append(item["command"])
    return tuple(commands)
