"""Named pretrained bundles: name -> archive URL and bundle digest, fetched once into a cache and verified.

The registry is ``registry.yaml`` beside this file plus any files listed in ``PDEOP_REGISTRY``
(separated like ``PATH``). An entry's ``url`` is ``https://``, ``http://``, ``file://`` or a path
relative to its registry file (bundles shipped inside the package); its ``sha256`` is the bundle
digest (``bundle.py``). The cache (``PDEOP_CACHE_DIR``, else ``$XDG_CACHE_HOME/pdeop/pretrained``,
else ``~/.cache/pdeop/pretrained``) is consulted first: a cached bundle never touches the network.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from tqdm import tqdm

from pdeop.errors import PdeopError
from pdeop.io import writable_directory
from pdeop.pretrained.bundle import MANIFEST, verify_bundle
from pdeop.pretrained.trusted import check_stored_config, plain_yaml

REGISTRY = Path(__file__).with_name("registry.yaml")


class RegistryError(PdeopError):
    """A registered name that is unknown, badly recorded, or cannot be fetched."""


@dataclass(frozen=True)
class Entry:
    """One registered bundle; ``url`` is absolute (a relative one is resolved against its registry file)."""

    name: str
    url: str
    sha256: str
    description: str = ""


def registry_files() -> list[Path]:
    extra = os.environ.get("PDEOP_REGISTRY", "")
    return [REGISTRY, *(Path(p) for p in extra.split(os.pathsep) if p)]


def read_registry(path: Path) -> dict[str, Entry]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"registry '{path}' is unreadable ({exc})") from exc
    if not isinstance(raw, dict):
        raise RegistryError(f"registry '{path}': expected a mapping of names to entries")
    entries = {}
    for name, entry in raw.items():
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._-]{0,127})*", str(name)):
            raise RegistryError(f"registry '{path}': entry name {str(name)!r} is not a plain name (letters, digits, "
                                f"'.', '_', '-', parts joined by '/', each starting with a letter or digit; it names "
                                f"a folder in the cache)")
        if not isinstance(entry, dict) or not isinstance(entry.get("url"), str):
            raise RegistryError(f"registry '{path}': entry '{name}' needs a url")
        if not re.fullmatch(r"[0-9a-f]{64}", str(entry.get("sha256", ""))):
            raise RegistryError(f"registry '{path}': entry '{name}' needs sha256, the bundle digest (64 hex digits)")
        url = entry["url"]
        if not urllib.parse.urlparse(url).scheme:
            url = (path.parent / url).resolve().as_uri()
        entries[str(name)] = Entry(str(name), url, entry["sha256"], str(entry.get("description", "")))
    return entries


def registry() -> dict[str, Entry]:
    """Every registered bundle; later registry files override earlier ones by name."""
    entries: dict[str, Entry] = {}
    for path in registry_files():
        entries |= read_registry(path)
    return entries


def cache_dir() -> Path:
    if "PDEOP_CACHE_DIR" in os.environ:
        return Path(os.environ["PDEOP_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pdeop" / "pretrained"


def cached_path(entry: Entry) -> Path:
    """Where ``entry``'s unpacked bundle lives in the cache (a new digest gets a new directory)."""
    return cache_dir() / f"{entry.name}-{entry.sha256[:16]}"


def download(url: str, target: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"fetching {url.rsplit('/', 1)[-1]}",
                  disable=total is not None and total < 1 << 20) as progress:
            for block in iter(lambda: response.read(1 << 16), b""):
                out.write(block)
                progress.update(len(block))


def bundle_root(unpacked: Path, url: str) -> Path:
    """The directory holding ``SHA256SUMS``: the archive's top level or its single top directory."""
    if (unpacked / MANIFEST).is_file():
        return unpacked
    children = [p for p in unpacked.iterdir() if p.is_dir()]
    if len(children) == 1 and (children[0] / MANIFEST).is_file():
        return children[0]
    raise RegistryError(f"archive {url} has no {MANIFEST} at its top level or in a single top directory")


# tarfile's "data" filter (Python 3.11.4 and later) as well: no absolute paths, links out, devices or set-uid modes
DATA_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def unsafe_member(member: tarfile.TarInfo) -> str | None:
    """Why an archive member has no place in a bundle, or None: a bundle is files and folders under relative
    paths, so an absolute path, a ``..`` part, a link (symbolic or hard) or a special file is refused before
    anything is unpacked, on every Python whether or not its tarfile filters."""
    path = PurePosixPath(member.name)
    if path.is_absolute():
        return "is an absolute path"
    if ".." in path.parts:
        return "climbs out of the folder it is unpacked into (..)"
    if member.issym():
        return f"is a symbolic link (to {member.linkname!r})"
    if member.islnk():
        return f"is a hard link (to {member.linkname!r})"
    if not (member.isfile() or member.isdir()):
        return "is a device, FIFO or other special file"
    return None


def fetch(entry: Entry) -> Path:
    """The verified bundle directory of ``entry``, from the cache or fetched into it once."""
    target = cached_path(entry)
    if target.exists():
        verify_bundle(target, entry.sha256)
        return target
    writable_directory(target.parent, "PDEOP_CACHE_DIR")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        archive = staging / "bundle.tar.gz"
        try:
            download(entry.url, archive)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise RegistryError(
                f"pretrained '{entry.name}' is not in the cache and could not be fetched from {entry.url} ({exc}); "
                f"on a machine with network, download that archive and unpack it into {target} (or pass the "
                f"unpacked bundle directory itself)") from exc
        unpacked = staging / "unpacked"
        try:
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    reason = unsafe_member(member)
                    if reason:
                        raise RegistryError(f"pretrained '{entry.name}': {entry.url} refused, nothing unpacked: its "
                                            f"member {member.name!r} {reason} (a bundle archive holds only files and "
                                            f"folders, under relative paths)")
                tar.extractall(unpacked, **DATA_FILTER)
        except (tarfile.TarError, OSError) as exc:
            raise RegistryError(f"pretrained '{entry.name}': {entry.url} is not a readable tar archive "
                                f"({exc})") from exc
        root = bundle_root(unpacked, entry.url)
        verify_bundle(root, entry.sha256)
        check_stored_config(plain_yaml(root / "config.yaml"), entry.url)  # nothing hostile enters the cache
        try:
            os.replace(root, target)
        except OSError:
            if not target.exists():  # not another process that fetched it first
                raise
        verify_bundle(target, entry.sha256)
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)
