"""Loggers that keep a run's history when the run starts again in its directory (a requeued or crashed job).

Lightning's loggers know nothing of resuming: with a fixed version (``version: ""``, pdeop's
``<run dir>/csv/``) the CSV logger deletes ``metrics.csv`` as soon as the restarted run logs, and
TensorBoard shows the redone steps twice. These subclasses are told by ``run.py`` where the run
continues (``continue_from``: the logging step of the checkpoint it resumes, or ``None`` for a
fresh start) before anything is logged, and then

- on resume, keep every row or event logged before that step and drop those logged after it
  (the epochs that will be redone), so the history reads as one uninterrupted run;
- on a fresh start in a directory that already has a history (``auto_resume=false``, or no
  readable checkpoint), move the old files into ``<logger dir>/previous-<n>/`` with a warning
  naming it: the new history starts empty and the old one is still there, never deleted.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import logging
import os
import secrets
from pathlib import Path

from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger, WandbLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from pdeop.errors import ConfigError
from pdeop.training.checkpoint_io import set_aside_files, temporary_beside

log = logging.getLogger(__name__)


def require_extra(extra: str, *modules: str) -> None:
    """Refuse ``logger=<extra>`` in one line when none of ``modules`` is installed (an optional dependency)."""
    if not any(importlib.util.find_spec(module) for module in modules):
        raise ConfigError(f"logger={extra} needs the {modules[0]} package: pip install 'pdeop[{extra}]'")


class ContinuesHistory:
    """A logger that ``run.py`` tells, before the first log, whether the run resumes and from which step."""

    resume_step: int | None = None

    def continue_from(self, step: int | None) -> None:
        """``step``: the first logging step the resumed run will log again; ``None``: a fresh run."""
        self.resume_step = step


def write_text(path: Path, text: str) -> None:
    """Replace the file ``path`` atomically and durably: a kill while writing leaves the old file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_beside(path)
    try:
        with open(tmp, "x", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_rows(path: Path, fieldnames: list[str], rows: list[dict]) -> None:
    """Replace the CSV file ``path`` atomically with a header and ``rows``."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue())


def complete_lines(path: Path) -> str:
    """The text of ``path`` up to its last line break: a row a kill cut short has none and is left out."""
    with open(path, newline="") as f:
        text = f.read()
    return text[: text.rfind("\n") + 1]


def logged_before(row: dict, step: int) -> bool:
    """Whether a metrics row was logged before ``step`` (a row without a readable step was not)."""
    try:
        return int(row.get("step") or "") < step
    except ValueError:
        return False


class HistoryWriter(ExperimentWriter):
    """Lightning's CSV writer, appending to the run's ``metrics.csv`` instead of deleting it."""

    def __init__(self, log_dir: str, resume_step: int | None):
        self.resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if self.resume_step is None:
            set_aside_files(Path(self.log_dir), "history")
        elif path.is_file():
            reader = csv.DictReader(io.StringIO(complete_lines(path)))
            rows = [row for row in reader if logged_before(row, self.resume_step)]
            fieldnames = list(reader.fieldnames or [])
            write_rows(path, fieldnames, [{k: v for k, v in row.items() if k in fieldnames} for row in rows])
            self.metrics_keys = fieldnames

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        path = Path(self.metrics_file_path)
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        write_rows(path, fieldnames, rows)


class CSVHistoryLogger(ContinuesHistory, CSVLogger):
    """``metrics.csv`` that survives restarts: rows before the resumed step kept, later ones redone.

    Every logged row is on disk at once (Lightning saves after each log), so a kill loses
    nothing that the checkpoint it resumes from covers -- but for the instant between an epoch's
    checkpoint and its training row, which Lightning logs just after. A fresh run in a directory with a
    ``metrics.csv`` moves it (and ``hparams.yaml``) to ``previous-<n>/`` with a warning.
    """

    @property
    @rank_zero_experiment
    def experiment(self) -> HistoryWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = HistoryWriter(self.log_dir, self.resume_step)
        return self._experiment


class TensorBoardHistoryLogger(ContinuesHistory, TensorBoardLogger):
    """TensorBoard event files that survive restarts.

    On resume the old event files stay and the new writer starts with ``purge_step``: TensorBoard
    hides every earlier event at or after that step, so the redone epochs show once. A fresh
    run in a directory with event files moves them to ``previous-<n>/``, which TensorBoard shows
    as a run of its own.
    """

    def __init__(self, *args, **kwargs):
        require_extra("tensorboard", "tensorboard", "tensorboardX")  # Lightning writes with either
        super().__init__(*args, **kwargs)

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None:
            if self.resume_step is None:
                set_aside_files(Path(self.log_dir), "history")
            else:
                self._kwargs["purge_step"] = self.resume_step
        return super().experiment


class WandbHistoryLogger(ContinuesHistory, WandbLogger):
    """A wandb run that a resumed pdeop run continues under the same id (``resume="allow"``).

    The id is kept in ``<save_dir>/wandb/pdeop-run-id``; a resumed run reuses it, a fresh run
    takes a new one (the old run's files stay where wandb wrote them). An explicit ``id`` in the
    config wins. Offline, wandb cannot rewind a run: steps logged after the checkpoint and redone
    appear twice in its offline files, each once per run directory (``offline-run-*``).
    """

    ID_FILE = "pdeop-run-id"

    def __init__(self, *args, **kwargs):
        require_extra("wandb", "wandb")
        super().__init__(*args, **kwargs)

    def continue_from(self, step: int | None) -> None:
        super().continue_from(step)
        if self._id is None:
            stored = self.id_file()
            self._id = stored.read_text().strip() if step is not None and stored.is_file() else secrets.token_hex(4)
            self._wandb_init["id"] = self._id

    def id_file(self) -> Path:
        return Path(self.save_dir or ".") / "wandb" / self.ID_FILE

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None:
            write_text(self.id_file(), super().experiment.id)
        return super().experiment
