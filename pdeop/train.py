"""Train a neural operator: `pdeop-train model=fno data=darcy [key=value ...]` (in a checkout also
`python train.py`)."""

import signal
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException
from pytorch_lightning.utilities.rank_zero import rank_zero_only

from pdeop.conf import CONFIG_PATH
from pdeop.errors import report_composition_errors, report_user_errors
from pdeop.training.resume import newest_first
from pdeop.training.run import train


@report_composition_errors
@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="config")
@report_user_errors
def main(cfg: DictConfig) -> None:
    """Train the run that ``cfg`` composes (Hydra's job name: ``train``).

    A run stopped by SIGTERM (preemption, ``scancel``, a time limit) exits with status 143, as a process the signal
    ended does, not 0 (Lightning's stop is a bare ``SystemExit``): a job script then tells it from a finished run.
    """
    try:
        train(cfg)
    except SIGTERMException:
        if rank_zero_only.rank == 0:  # every rank of a distributed run stops; one says so
            print(f"pdeop: training stopped by SIGTERM; {resume_hint(cfg)}", file=sys.stderr)
        sys.exit(128 + signal.SIGTERM)


def resume_hint(cfg: DictConfig) -> str:
    """How to resume a run that ``cfg`` started and SIGTERM stopped: the same command in the same run directory where
    it resumes by itself (auto_resume, no ckpt_path), else the same command naming the newest checkpoint."""
    output_dir = Path(cfg.paths.output_dir)
    saved = newest_first(output_dir / "checkpoints") if (output_dir / "checkpoints").is_dir() else []
    if not saved:
        return "no checkpoint was written yet: the same command starts it afresh"
    if cfg.auto_resume and cfg.ckpt_path is None:
        return f"the same command with hydra.run.dir={output_dir} resumes it from {saved[0].name}"
    return f"the same command with ckpt_path={saved[0]} resumes it"


if __name__ == "__main__":
    main()
