"""Fixtures: a live `riposte serve` for the tests that need one.

RIPOSTE_BIN names the server binary. Without it the live tests are skipped,
except under CI=true, where they fail. The server runs on a free port with a
fresh data folder, imports the repository's challenges (or
RIPOSTE_CHALLENGES_DIR), and its clock is moved to 2026-12-01, inside every
shipped bundle's windows, as the Rust tests do.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator

import pytest
import requests

import riposte

REPO = Path(__file__).resolve().parents[3]
CLOCK = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.timezone.utc)
PASSWORD = "correct horse battery staple"
START_SECONDS = 300


@dataclass
class Server:
    """A running `riposte serve`."""

    url: str
    binary: str
    data_dir: Path
    workdir: Path
    env: Dict[str, str]
    admin_password: str
    log: Path

    def create_user(self, name: str, role: str = "competitor", password: str = PASSWORD) -> str:
        """`riposte admin create-user NAME --role ROLE` with RIPOSTE_PASSWORD; returns the password."""
        subprocess.run(
            [self.binary, "admin", "create-user", name, "--role", role, "--data-dir", str(self.data_dir)],
            cwd=self.workdir,
            env={**self.env, "RIPOSTE_PASSWORD": password},
            check=True,
            capture_output=True,
            timeout=120,
        )
        return password

    def login(self, name: str, password: str = PASSWORD) -> riposte.Client:
        return riposte.Client(self.url).login(name, password)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    binary = os.environ.get("RIPOSTE_BIN")
    if not binary:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("RIPOSTE_BIN is not set: CI must run the live-server tests")
        pytest.skip("RIPOSTE_BIN is not set: live-server tests skipped")
    found = shutil.which(binary)
    if not found:
        pytest.fail(f"RIPOSTE_BIN={binary!r} is not an executable")
    binary = os.path.abspath(found)
    challenges = Path(os.environ.get("RIPOSTE_CHALLENGES_DIR", REPO / "challenges")).resolve()
    if not (challenges / "mnist-evasion" / "challenge.toml").is_file():
        pytest.fail(f"no challenge bundles in {challenges} (set RIPOSTE_CHALLENGES_DIR)")

    root = tmp_path_factory.mktemp("riposte")
    data_dir, workdir = root / "data", root / "work"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RIPOSTE__")}
    env.update(
        RIPOSTE__CHALLENGES_DIR=str(challenges),
        RIPOSTE__CLOCK_OFFSET_SECONDS=str(int(CLOCK.timestamp() - time.time())),
        RIPOSTE__AUTH_ATTEMPTS_PER_IP_PER_MINUTE="1000",
    )
    out, log = root / "stdout.txt", root / "server.log"
    with out.open("wb") as stdout, log.open("wb") as stderr:
        proc = subprocess.Popen(
            [binary, "serve", "--bind", "127.0.0.1:0", "--data-dir", str(data_dir)],
            cwd=workdir,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
    try:
        url = _wait_listening(proc, out, log)
        printed = out.read_text()
        admin = re.search(r"^\s*password: (\S+)", printed, re.MULTILINE)
        if not admin:
            pytest.fail(f"the first run printed no admin password:\n{printed}")
        yield Server(url, binary, data_dir, workdir, env, admin.group(1), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_listening(proc: subprocess.Popen, out: Path, log: Path) -> str:
    """The server's URL once it prints it and /healthz answers."""
    deadline = time.monotonic() + START_SECONDS
    url = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"riposte serve exited with {proc.returncode}:\n{_tail(out)}\n{_tail(log)}")
        if url is None:
            found = re.search(r"listening on (http://\S+)", out.read_text())
            url = found.group(1).rstrip("/") if found else None
        if url is not None:
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    return url
            except requests.RequestException:
                pass
        time.sleep(0.2)
    pytest.fail(f"riposte serve did not answer within {START_SECONDS} s:\n{_tail(log)}")


@pytest.fixture(scope="session")
def alice(server: Server) -> riposte.Client:
    """A competitor in a team of one, signed in with an API token."""
    server.create_user("alice")
    return server.login("alice")
