"""The fault-injection suite: real faults (kill -9, a full disk, read-only places, hostile files) and their outcome.

Every test is one case of ``experiments/reliability.md``: mark it ``@pytest.mark.fault("<fault or input>",
"<expected outcome>")`` (``{name}`` in either is filled from the test's parameters) and record what was seen
with the ``observed`` fixture. ``python experiments/reliability.py`` runs this folder and writes the table.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARCHIVE = ROOT / "pdeop" / "pretrained" / "archives" / "fno-darcy.tar.gz"  # the shipped bundle, as exported
REPORT_ENV = "PDEOP_RELIABILITY_JSON"  # where the run's cases go, as JSON (set by experiments/reliability.py)
_cases: list[dict] = []


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    """The shipped fno-darcy bundle, unpacked."""
    into = tmp_path_factory.mktemp("shipped")
    with tarfile.open(ARCHIVE) as tar:
        tar.extractall(into, filter="data")
    return next(into.iterdir())


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "fault(case, expected): a case of experiments/reliability.md")


@pytest.fixture
def observed(request) -> Callable[[str], None]:
    """Record what the case observed (exit status, the message, what was left on disk) for the report."""
    notes: list[str] = []
    request.node.user_properties.append(("observed", notes))
    return notes.append


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("fault")
    if marker is None or report.when != "call" and not (report.when == "setup" and not report.passed):
        return
    params = getattr(getattr(item, "callspec", None), "params", {})
    case, expected = (str(text).format(**params) for text in marker.args[:2])
    notes = next((v for k, v in item.user_properties if k == "observed"), [])
    if report.passed:
        seen = "; ".join(notes)
    elif report.skipped:
        reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else getattr(report, "wasxfail", "")
        seen = f"skipped: {reason}"
    else:
        seen = (report.longreprtext.strip().splitlines() or ["failed"])[-1]
    _cases.append({"test": item.nodeid, "case": case, "expected": expected, "observed": seen,
                   "outcome": report.outcome})


def pytest_sessionfinish(session, exitstatus) -> None:
    target = os.environ.get(REPORT_ENV)
    if target and _cases:
        Path(target).write_text(json.dumps(_cases, indent=1))


def pdeop_error_line(stderr: str) -> str:
    """The one ``pdeop error:`` line of a failed entry point (asserting there is one and no traceback)."""
    assert "Traceback" not in stderr, stderr[-4000:]
    lines = [line for line in stderr.splitlines() if line.startswith("pdeop error:")]
    assert len(lines) == 1, stderr[-4000:]
    return lines[0]


def entry_command(script: list[str], overrides: list[str], run_dir: Path) -> list[str]:
    quiet = ["trainer.enable_progress_bar=false"] if script == ["train.py"] else []
    return [sys.executable, *script, f"hydra.run.dir={run_dir}", *quiet, *overrides]


def entry_env(data_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "PDEOP_DATA_DIR": str(data_dir), "WANDB_SILENT": "true", **extra}


def kill_when(process: subprocess.Popen, ready: Callable[[], bool], timeout: float = 600,
              signum: int = signal.SIGKILL) -> tuple[str, str]:
    """Send ``signum`` (SIGKILL) to ``process`` and its process group as soon as ``ready()`` holds, and return what
    it printed (stdout, stderr) by its end; fail if it ends first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the process ended ({process.returncode}) before the fault point:\n{err[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the fault point was not reached in {timeout} s")
        time.sleep(0.05)
    os.killpg(process.pid, signum)
    return process.communicate()


def start(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    """Start an entry point in its own process group, so that kill -9 reaches its workers too."""
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _mount(*args: str) -> bool:
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """Make the existing directory ``path`` read-only for this process and its children, contents kept.

    As root, permissions do not stop a write, so the directory is bind-mounted read-only onto itself;
    otherwise its mode is 0555. Skips the test where neither is possible.
    """
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(0o555)
        try:
            yield path
        finally:
            path.chmod(mode)
        return
    if not (_mount("--bind", str(path), str(path)) and _mount("-o", "remount,bind,ro", str(path))):
        subprocess.run(["umount", str(path)], capture_output=True)
        pytest.skip("cannot make a read-only mount here (root without mount rights)")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


@contextmanager
def small_disk(path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (``"2m"``) mounted at ``path``: a disk that fills up. Skips where it cannot mount."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)):
        pytest.skip("cannot mount a small tmpfs here (needs root with mount rights)")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)
