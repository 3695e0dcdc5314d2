"""The sandbox is a development tool beside the product: production code never imports it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
PRODUCT = ("bot", "handlers", "authz")


def test_the_production_path_does_not_load_the_sandbox() -> None:
    script = (
        "import sys\n"
        "import bot.cli, bot.server, bot.web, bot.wiring, bot.slack_app, bot.storage.migrate\n"
        "loaded = sorted(m for m in sys.modules if m == 'sandbox' or m.startswith('sandbox.'))\n"
        "print(','.join(loaded))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "", done.stdout


# Where the product may import the sandbox, lazily: mounting it in sandbox mode, and the
# list of tables the migrations create (the sandbox keeps its workspace in the database).
LAZY_IMPORTS = {("bot/server.py", "mount_sandbox"), ("bot/storage/migrate.py", "target_metadata")}


def _sandbox_imports(path: Path) -> list[tuple[int, str]]:
    """Imports of the sandbox package outside the functions allowed to: (line, module)."""
    tree = ast.parse(path.read_text(), str(path))
    where = path.relative_to(REPO).as_posix()
    allowed: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and (where, node.name) in LAZY_IMPORTS:
            allowed |= {id(n) for n in ast.walk(node)}
    found = []
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [(node.lineno, n) for n in names if n == "sandbox" or n.startswith("sandbox.")]
    return found


def test_only_mount_sandbox_imports_the_sandbox() -> None:
    offenders = {
        str(path.relative_to(REPO)): hits
        for package in PRODUCT
        for path in sorted((REPO / package).rglob("*.py"))
        if (hits := _sandbox_imports(path))
    }
    assert offenders == {}
    server = (REPO / "bot" / "server.py").read_text()
    assert "from sandbox.slack import" in server  # lazily, inside mount_sandbox
