"""Export a trained run as a bundle: `pdeop-export ckpt=<path> out=<dir> [name=...] [description=...]` (or
`python -m pdeop.export`)."""

from __future__ import annotations

import gzip
import tarfile
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig

from pdeop.conf import CONFIG_PATH
from pdeop.config import check_settings, settings_of
from pdeop.errors import report_composition_errors, report_user_errors
from pdeop.io import atomic_path, stops_cleanly
from pdeop.pretrained.bundle import FILES, MANIFEST, replaceable, write_bundle
from pdeop.pretrained.card import model_card
from pdeop.pretrained.checkpoint import CheckpointError, load_checkpoint
from pdeop.pretrained.load import load_source, resolve
from pdeop.pretrained.registry import archive_problem


@dataclass
class ExportSettings:
    """The keys of ``pdeop/conf/export.yaml``, typed: ``overwrite=no`` is a string, which is not false."""

    ckpt: str
    out: str
    name: str | None
    description: str
    archive: bool
    overwrite: bool


def archive_path(bundle: Path) -> Path:
    """Where the archive of the bundle directory ``bundle`` goes: ``<bundle>.tar.gz`` beside it."""
    return bundle.with_name(bundle.name + ".tar.gz")


def write_archive(bundle: Path, files: Path) -> Path:
    """``<bundle>.tar.gz`` with the bundle's files (read from ``files``, the bundle as it is being assembled) under
    one top directory named as the bundle, byte-identical on every export."""
    archive = archive_path(bundle)
    with atomic_path(archive) as tmp:
        # the name gzip records is the archive's (less .gz), not the temporary's random one
        with open(tmp, "wb") as raw, gzip.GzipFile(archive.name, mode="wb", fileobj=raw, mtime=0) as zipped:
            with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
                for name in (*FILES, MANIFEST):
                    info = tar.gettarinfo(files / name, arcname=f"{bundle.name}/{name}")
                    info.mtime, info.uid, info.gid, info.uname, info.gname, info.mode = 0, 0, 0, "", "", 0o644
                    with open(files / name, "rb") as f:
                        tar.addfile(info, f)
    return archive


def replaceable_archive(path: Path, overwrite: bool) -> None:
    """Refuse to write the archive over ``path`` unless it is absent, or ``overwrite`` is set and it is a bundle
    archive (``archive_problem``): a user's own file or folder of that name is never replaced."""
    if not (path.exists() or path.is_symlink()):
        return
    if not overwrite:
        raise CheckpointError(f"out: '{path}' already exists; choose another out, pass archive=false or "
                              f"overwrite=true")
    problem = "it is not a file" if path.is_symlink() or not path.is_file() else archive_problem(path)
    if problem:
        raise CheckpointError(f"out: '{path}' is not a pdeop bundle archive ({problem}); overwrite=true replaces only "
                              f"a bundle archive, choose another out or pass archive=false")


def export(ckpt: str, out: str | Path, name: str | None = None, description: str = "", archive: bool = True,
           overwrite: bool = False) -> str:
    """Write the model ``ckpt`` refers to as a bundle at ``out`` (and ``<out>.tar.gz``); returns the bundle digest."""
    if str(out).strip() in ("", "."):
        raise CheckpointError("out: no bundle directory given; name the folder to write")
    out = Path(out)
    if out.exists() or out.is_symlink():  # refused before the model is loaded
        replaceable(out, overwrite)
    if archive:
        replaceable_archive(archive_path(out), overwrite)
    source = resolve(ckpt)
    module = load_source(source)
    epoch = step = None
    if source.kind == "checkpoint":
        checkpoint = load_checkpoint(source.path)
        epoch, step = checkpoint.get("epoch"), checkpoint.get("global_step")
    card = model_card(module, source.path, source.sha256, name or out.name, description, epoch, step)
    # the archive is written from the assembled bundle just before it is renamed into place: a stop while either is
    # written leaves the old pair; only one between the archive's rename and the bundle's leaves them unmatched
    digest = write_bundle(module, out, card, overwrite=overwrite,
                          assembled=(lambda files: write_archive(out, files)) if archive else None)
    print(f"bundle {out} (digest {digest})")
    if archive:
        path = archive_path(out)
        print(f"archive {path}\nregistry entry:\n{name or out.name}:\n  url: <where {path.name} is published>\n"
              f"  sha256: {digest}")
    return digest


@report_composition_errors
@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
@report_user_errors
@stops_cleanly
def main(cfg: DictConfig) -> None:
    """Export the model ``cfg.ckpt`` names as the bundle ``cfg.out``."""
    check_settings(settings_of(cfg, ExportSettings), ExportSettings)
    export(cfg.ckpt, cfg.out, cfg.name, cfg.description, cfg.archive, cfg.overwrite)


if __name__ == "__main__":
    main()
