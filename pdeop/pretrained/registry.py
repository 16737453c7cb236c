"""Named pretrained bundles: name -> archive URL and bundle digest, fetched once into a cache and verified.

The registry is ``registry.yaml`` beside this file plus any files listed in ``PDEOP_REGISTRY``
(separated like ``PATH``). An entry's ``url`` is ``https://``, ``http://``, ``file://`` or a path
relative to its registry file (bundles shipped inside the package); its ``sha256`` is the bundle
digest (``bundle.py``). The cache (``PDEOP_CACHE_DIR``, else ``$XDG_CACHE_HOME/pdeop/pretrained``,
else ``~/.cache/pdeop/pretrained``) is consulted first: a cached bundle never touches the network.
A fetched archive may hold a bundle's files only (at its top level or in one folder), ``MAX_BUNDLE_BYTES`` at
most; a fetch is staged in a hidden locked folder beside its cache folder, which a killed fetch leaves behind and
the next fetch of that name removes.
"""

from __future__ import annotations

import fcntl
import gzip
import http.client
import lzma
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml
from tqdm import tqdm

from pdeop.errors import PdeopError, first_line
from pdeop.io import writable_directory
from pdeop.pretrained.bundle import FILES, MANIFEST, verify_bundle
from pdeop.pretrained.trusted import check_stored_config, plain_yaml

REGISTRY = Path(__file__).with_name("registry.yaml")
# The most bytes a bundle archive may download as, and its members declare: a bundle is a few files of weights,
# and a hostile or broken URL (file:///dev/zero, a padded archive) must not fill the cache's disk.
MAX_BUNDLE_BYTES = 4 << 30
BUNDLE_NAMES = (*FILES, MANIFEST)
UNLOCKED_STAGING_S = 3600  # age past which a staging folder without its lock file is a killed fetch's


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


def yaml_problem(exc: yaml.YAMLError) -> str:
    """YAML's complaint in one line: its problem and where (line and column, counted from 1)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark:
        return f"{exc.problem} at line {exc.problem_mark.line + 1}, column {exc.problem_mark.column + 1}"
    return " ".join(str(exc).split())


def read_registry(path: Path) -> dict[str, Entry]:
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise RegistryError(f"registry '{path}' is unreadable ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise RegistryError(f"registry '{path}' is not UTF-8 text (byte {exc.start} is {exc.object[exc.start]:#04x}); "
                            f"expected a YAML mapping of names to entries") from exc
    except yaml.YAMLError as exc:
        raise RegistryError(f"registry '{path}' is not valid YAML: {yaml_problem(exc)}") from exc
    except RecursionError as exc:
        raise RegistryError(f"registry '{path}' is nested too deeply to read; expected a YAML mapping of names to "
                            f"entries") from exc
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


def download(entry: Entry, target: Path) -> None:
    """Copy ``entry.url`` to ``target``, stopping at more bytes than its Content-Length or ``MAX_BUNDLE_BYTES`` (a URL
    such as file:///dev/zero never ends) and refusing fewer than its Content-Length (a cut connection)."""
    refused = f"pretrained '{entry.name}': {entry.url} refused"
    limit = f"MAX_BUNDLE_BYTES ({MAX_BUNDLE_BYTES} bytes, pdeop.pretrained.registry)"
    with urllib.request.urlopen(entry.url, timeout=60) as response, open(target, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total is not None and total > MAX_BUNDLE_BYTES:
            raise RegistryError(f"{refused}: its Content-Length is {total} bytes, over {limit}")
        if total is not None:
            limit = f"its Content-Length ({total} bytes)"
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"fetching {entry.url.rsplit('/', 1)[-1]}",
                  disable=total is not None and total < 1 << 20) as progress:
            for block in iter(lambda: response.read(1 << 16), b""):
                received += len(block)
                if received > (total or MAX_BUNDLE_BYTES):
                    raise RegistryError(f"{refused}: it sent more than {limit}; the download was stopped")
                out.write(block)
                progress.update(len(block))
    if total is not None and received < total:
        raise RegistryError(f"pretrained '{entry.name}': {entry.url} is an incomplete download ({received} of its "
                            f"{total} bytes arrived); fetch it again")


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


def member_problem(member: tarfile.TarInfo, layout: set[tuple[str, ...]], seen: set[str]) -> str | None:
    """Why ``member`` has no place in a bundle archive, or None, adding its folder to ``layout`` and its file name
    to ``seen``: a bundle archive holds the bundle's files once each, all at its top level or all in one folder."""
    reason = unsafe_member(member)
    if reason:
        return reason
    parts = PurePosixPath(member.name).parts
    place = parts if member.isdir() else parts[:-1]
    if len(place) > 1 or member.isfile() and parts[-1] not in BUNDLE_NAMES:
        return f"is not one of a bundle's files ({', '.join(BUNDLE_NAMES)}, at the top level or in one folder)"
    if member.isdir() and not place:  # "." itself
        return None
    if layout and place not in layout:
        other = next(iter(layout))
        return f"is not in {f'the folder {other[0]!r}' if other else 'the top level'} with the members before it"
    layout.add(place)
    if member.isfile():
        if parts[-1] in seen:
            return f"is the second {parts[-1]}"
        seen.add(parts[-1])
    return None


def bundle_members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """The archive's members, each checked as its header is read (``member_problem``), so that a refusal comes
    before the rest is decompressed; the sizes they declare add up to ``MAX_BUNDLE_BYTES`` at most. Raises
    RegistryError naming the first member refused."""
    members, layout, seen, total = [], set(), set(), 0
    for member in tar:
        total += member.size
        reason = member_problem(member, layout, seen)
        if reason is None and total > MAX_BUNDLE_BYTES:
            reason = f"brings the declared size to {total} bytes, over MAX_BUNDLE_BYTES ({MAX_BUNDLE_BYTES})"
        if reason:
            raise RegistryError(f"its member {member.name!r} {reason}")
        members.append(member)
    return members


# what a cut or corrupted download raises while it is decompressed or read
DAMAGED = (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, tarfile.ReadError)


def archive_problem(path: Path) -> str | None:
    """Why the file at ``path`` is not a bundle archive (a tar file whose members ``bundle_members`` accepts), or
    None where it is one."""
    try:
        tar = tarfile.open(path)
    except tarfile.TarError:
        return "not a tar archive"
    except OSError as exc:
        return first_line(exc)
    try:
        with tar:
            bundle_members(tar)
    except RegistryError as exc:
        return str(exc)
    except (*DAMAGED, OSError) as exc:
        return f"damaged: {first_line(exc)}"
    return None


def unpack(archive: Path, into: Path, entry: Entry) -> None:
    """Unpack the bundle archive ``archive`` into ``into``, its members checked first (``bundle_members``)."""
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError as exc:
        raise RegistryError(f"pretrained '{entry.name}': {entry.url} is not a tar archive (a bundle archive is the "
                            f"<bundle>.tar.gz python -m pdeop.export writes)") from exc
    try:
        with tar:
            try:
                members = bundle_members(tar)
            except RegistryError as exc:
                raise RegistryError(f"pretrained '{entry.name}': {entry.url} refused, nothing unpacked: {exc}") \
                    from None
            tar.extractall(into, members=members, **DATA_FILTER)
    except DAMAGED as exc:
        raise RegistryError(f"pretrained '{entry.name}': {entry.url} is damaged or an incomplete download "
                            f"({first_line(exc)}); fetch it again") from exc
    except (tarfile.TarError, OSError) as exc:
        raise RegistryError(f"pretrained '{entry.name}': {entry.url} could not be unpacked into "
                            f"{into.parent.parent} ({first_line(exc)})") from exc


def staging_pattern(target: Path) -> re.Pattern:
    """The names ``tempfile.mkdtemp(prefix=f".{target.name}.")`` gives: the staging folders of ``target``'s fetches."""
    return re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}")


def lock_new_staging(target: Path) -> tuple[Path, int]:
    """Create a hidden staging folder beside ``target`` holding the file ``lock``, and an exclusive ``flock`` on
    that file (a file opened for writing, as NFS needs); returns the folder and the lock's fd.

    The lock tells ``remove_stale_staging`` in other processes that a live fetch owns the folder. A cleaner may
    remove the folder between its creation and the lock: then its path no longer names the locked file, and
    another is made.
    """
    while True:
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            fd = os.open(staging / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass  # a file system without locks: no cleaner can take one there either, so none removes the folder
        try:
            if os.stat(staging / "lock").st_ino == os.fstat(fd).st_ino:
                return staging, fd
        except FileNotFoundError:
            pass
        os.close(fd)


def remove_stale_staging(target: Path) -> None:
    """Remove the staging folders of ``target`` that no live fetch holds: those a killed fetch left. A folder
    without a lock file is one an earlier pdeop left, or one a fetch is about to lock: only one older than
    ``UNLOCKED_STAGING_S`` is removed, so that a fetch between its ``mkdtemp`` and its lock keeps its folder."""
    pattern = staging_pattern(target)
    for staging in target.parent.iterdir():
        if not pattern.fullmatch(staging.name) or staging.is_symlink() or not staging.is_dir():
            continue
        try:
            fd = os.open(staging / "lock", os.O_RDWR)
        except FileNotFoundError:
            try:
                if time.time() - staging.stat().st_mtime > UNLOCKED_STAGING_S:
                    shutil.rmtree(staging, ignore_errors=True)
            except OSError:  # removed meanwhile
                pass
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(staging, ignore_errors=True)
        except OSError:
            pass  # another process is fetching into it (or the file system cannot tell)
        finally:
            os.close(fd)


def fetch(entry: Entry) -> Path:
    """The verified bundle directory of ``entry``, from the cache or fetched into it once."""
    target = cached_path(entry)
    if target.exists():
        verify_bundle(target, entry.sha256)
        return target
    writable_directory(target.parent, "PDEOP_CACHE_DIR")
    remove_stale_staging(target)
    staging, lock = lock_new_staging(target)
    try:
        archive = staging / "bundle.tar.gz"
        try:
            download(entry, archive)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise RegistryError(
                f"pretrained '{entry.name}' is not in the cache and could not be fetched from {entry.url} ({exc}); "
                f"on a machine with network, download that archive and unpack it into {target} (or pass the "
                f"unpacked bundle directory itself)") from exc
        unpack(archive, staging / "unpacked", entry)
        root = bundle_root(staging / "unpacked", entry.url)
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
        os.close(lock)
