"""Hostile registry archives, registry files, downloads and the files beside a bundle: each refusal is one line,
and nothing a refused archive holds reaches the cache.

Archives are made from the shipped ``fno-darcy`` bundle, with members added or changed; the registry names them
through ``PDEOP_REGISTRY`` and the cache is the test's own folder.
"""

from __future__ import annotations

import fcntl
import http.server
import importlib
import io
import json
import os
import time
import shutil
import tarfile
import threading
from pathlib import Path

import pytest
import yaml

from pdeop.pretrained import CheckpointError, RegistryError, load_pretrained, registry, verify_bundle
from pdeop.pretrained.bundle import FILES, MANIFEST
from pdeop.pretrained.poseidon import poseidon_config

from .conftest import ARCHIVE

REGISTRY_MODULE = importlib.import_module("pdeop.pretrained.registry")  # the package's `registry` is the function


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty cache of the test's own, and no registry files but the shipped one."""
    monkeypatch.setenv("PDEOP_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("PDEOP_REGISTRY", raising=False)
    return tmp_path / "cache"


def register(tmp_path: Path, monkeypatch, url: str, digest: str = "0" * 64) -> str:
    """Register ``url`` as the name ``hostile`` (in a registry file of the test's own); returns the name."""
    path = tmp_path / "registry.yaml"
    path.write_text(yaml.safe_dump({"hostile": {"url": url, "sha256": digest}}))
    monkeypatch.setenv("PDEOP_REGISTRY", str(path))
    return "hostile"


def member(name: str, data: bytes = b"") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def bundle_archive(path: Path, bundle: Path, top: str = "fno-darcy", extra: list | tuple = ()) -> Path:
    """A tar.gz of ``bundle``'s files under the folder ``top`` (``""``: at the top level), then ``extra`` members."""
    with tarfile.open(path, "w:gz") as tar:
        for name in (*FILES, MANIFEST):
            tar.add(bundle / name, arcname=f"{top}/{name}" if top else name)
        for info, data in extra:
            tar.addfile(info, io.BytesIO(data))
    return path


def refused_fetch(name: str, match: str) -> str:
    with pytest.raises(RegistryError, match=match) as error:
        load_pretrained(name)
    message = str(error.value)
    assert "\n" not in message, message
    return message


HOSTILE_MEMBERS = {
    "a 1 MiB padding member": ([member("fno-darcy/padding.bin", bytes(1 << 20))], "'fno-darcy/padding.bin' is not"),
    "2,000 junk members": ([member(f"fno-darcy/junk/{i}") for i in range(2000)], "'fno-darcy/junk/0' is not"),
    "a file of another folder": ([member("other/README.md", b"x")], "'other/README.md' is not in the folder"),
    "config.yaml a second time": ([member("fno-darcy/config.yaml", b"model: {}\n")],
                                  "'fno-darcy/config.yaml' is the second config.yaml"),
}


@pytest.mark.fault("registry: an archive holding the shipped bundle and {case}",
                   "refused before anything is unpacked, naming the member; nothing in the cache")
@pytest.mark.parametrize("case", HOSTILE_MEMBERS)
def test_an_archive_member_that_is_no_bundle_file_is_refused(shipped, cache, tmp_path, monkeypatch, case, observed):
    extra, match = HOSTILE_MEMBERS[case]
    archive = bundle_archive(tmp_path / "hostile.tar.gz", shipped, extra=extra)
    name = register(tmp_path, monkeypatch, archive.name, verify_bundle(shipped))
    message = refused_fetch(name, f"hostile.tar.gz refused, nothing unpacked: its member {match}")
    assert not any(cache.iterdir())
    observed(message)


@pytest.mark.fault("registry: an archive whose model.safetensors declares more than MAX_BUNDLE_BYTES (8 MiB of "
                   "zeros, the limit set to 1 MiB)", "refused before unpacking, naming MAX_BUNDLE_BYTES")
def test_members_declaring_more_than_the_limit_are_refused(shipped, cache, tmp_path, monkeypatch, observed):
    monkeypatch.setattr(REGISTRY_MODULE, "MAX_BUNDLE_BYTES", 1 << 20)
    files = tmp_path / "files"
    shutil.copytree(shipped, files)
    (files / "model.safetensors").write_bytes(bytes(8 << 20))  # compresses to a few kB: the download is small
    archive = bundle_archive(tmp_path / "big.tar.gz", files)
    name = register(tmp_path, monkeypatch, archive.name)
    message = refused_fetch(name, r"its member 'fno-darcy/model.safetensors' brings the declared size to \d+ bytes, "
                                  r"over MAX_BUNDLE_BYTES \(1048576\)")
    assert not any(cache.iterdir())
    observed(message)


@pytest.mark.parametrize("top", ["fno-darcy", "", "."])
def test_a_bundle_archive_at_its_top_level_or_in_one_folder_is_fetched(shipped, cache, tmp_path, monkeypatch, top):
    """The shipped archive's layout (one folder, no folder member), the bundle's files at the top level, and
    ``./<file>`` as ``tar -C <bundle> -czf x .`` writes (with its ``.`` folder member)."""
    extra = [(tarfile.TarInfo("."), b"")] if top == "." else []
    if extra:
        extra[0][0].type = tarfile.DIRTYPE
    archive = bundle_archive(tmp_path / "good.tar.gz", shipped, top, extra)
    name = register(tmp_path, monkeypatch, archive.name, verify_bundle(shipped))
    assert load_pretrained(name) is not None
    assert [p.name for p in cache.iterdir()] == [f"hostile-{verify_bundle(shipped)[:16]}"]


@pytest.mark.fault("registry: {case}", "one line: {expected}; nothing in the cache")
@pytest.mark.parametrize(("case", "expected"), [
    ("the shipped archive cut in half (a download cut short)", "is damaged or an incomplete download"),
    ("a text file where the archive should be", "is not a tar archive"),
])
def test_a_damaged_or_foreign_archive_is_one_line(cache, tmp_path, monkeypatch, case, expected, observed):
    data = ARCHIVE.read_bytes()
    (tmp_path / "bad.tar.gz").write_bytes(data[:len(data) // 2] if "half" in case else b"not an archive\n")
    name = register(tmp_path, monkeypatch, "bad.tar.gz")
    message = refused_fetch(name, f"bad.tar.gz {expected}")
    assert not any(cache.iterdir())
    observed(message)


@pytest.mark.fault("registry: url file:///dev/zero (a download without an end), MAX_BUNDLE_BYTES set to 1 MiB",
                   "the download stops past the limit, one line naming MAX_BUNDLE_BYTES; nothing in the cache")
def test_a_download_without_an_end_is_stopped_at_the_limit(cache, tmp_path, monkeypatch, observed):
    monkeypatch.setattr(REGISTRY_MODULE, "MAX_BUNDLE_BYTES", 1 << 20)
    name = register(tmp_path, monkeypatch, "file:///dev/zero")
    message = refused_fetch(name, r"file:///dev/zero refused: it sent more than MAX_BUNDLE_BYTES \(1048576 bytes")
    assert not any(cache.iterdir())
    observed(message)


def test_a_file_larger_than_the_limit_is_refused_before_it_is_read(cache, tmp_path, monkeypatch):
    monkeypatch.setattr(REGISTRY_MODULE, "MAX_BUNDLE_BYTES", 1 << 20)
    with open(tmp_path / "large.tar.gz", "wb") as large:
        large.truncate(8 << 20)
    name = register(tmp_path, monkeypatch, "large.tar.gz")
    refused_fetch(name, r"its Content-Length is 8388608 bytes, over MAX_BUNDLE_BYTES \(1048576 bytes")
    assert not any(cache.iterdir())


class CutServer:
    """A real HTTP server on localhost that announces the shipped archive's length and sends half of it."""

    def __init__(self):
        data = ARCHIVE.read_bytes()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[:len(data) // 2])

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fno-darcy.tar.gz"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.fault("registry: an HTTP server that closes the connection halfway through its Content-Length",
                   "one line: an incomplete download, bytes received of those announced; nothing in the cache")
def test_a_download_cut_short_of_its_content_length_is_one_line(cache, tmp_path, monkeypatch, observed):
    server = CutServer()
    try:
        name = register(tmp_path, monkeypatch, server.url)
        message = refused_fetch(name, rf"{server.url} is an incomplete download \(\d+ of its {ARCHIVE.stat().st_size} "
                                      rf"bytes arrived\); fetch it again")
    finally:
        server.stop()
    assert not any(cache.iterdir())
    observed(message)


@pytest.mark.fault("registry: the staging folders a killed fetch left beside the cache folder (locked by none, or "
                   "an earlier pdeop's without a lock file, an hour old), one a live fetch holds, one a fetch has "
                   "just made and not yet locked, and look-alike names",
                   "the next fetch removes the killed ones only")
def test_the_next_fetch_removes_what_a_killed_fetch_left(cache, observed):
    entry = registry()["fno-darcy"]
    prefix = f".fno-darcy-{entry.sha256[:16]}."
    stale, earlier, live = cache / f"{prefix}k1lled_0", cache / f"{prefix}earlier0", cache / f"{prefix}live_123"
    unlocked = cache / f"{prefix}just_new"  # a fetch between its mkdtemp and its lock
    keep = [live, unlocked, cache / f"{prefix}short", cache / f"{prefix}k1lled_0.bak",
            cache / f".other.{stale.name[-8:]}"]
    for folder in (stale, earlier, *keep):
        (folder / "unpacked").mkdir(parents=True)
        (folder / "bundle.tar.gz").write_bytes(b"partial")
        if folder not in (earlier, unlocked):
            (folder / "lock").touch()
    hour_ago = time.time() - 3700
    os.utime(earlier, (hour_ago, hour_ago))
    held = os.open(live / "lock", os.O_RDWR)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a fetch running in another process holds its folder
        load_pretrained("fno-darcy")
    finally:
        os.close(held)
    assert sorted(p.name for p in cache.iterdir()) == sorted([*(p.name for p in keep), prefix[1:-1]])
    observed(f"removed {stale.name}, {earlier.name}; kept {', '.join(p.name for p in keep)}")


@pytest.mark.fault("a PDEOP_REGISTRY file that is {case}", "one line naming the file and {expected}")
@pytest.mark.parametrize(("case", "text", "expected"), [
    ("not UTF-8", b"fno: \xff\xfe\n", "is not UTF-8 text (byte 5 is 0xff)"),
    ("YAML with an unclosed list", b"fno: [1, 2\n", "is not valid YAML: expected ',' or ']', but got '<stream end>' "
                                                    "at line 2, column 1"),
    ("YAML indented wrongly", b"a:\n  b: 1\n c: 2\n", "is not valid YAML: expected <block end>, but found "
                                                      "'<block mapping start>' at line 3, column 2"),
    ("100,000 nested lists", b"[" * 100000, "is nested too deeply to read"),
])
def test_a_registry_file_that_is_no_yaml_mapping_is_one_line(tmp_path, monkeypatch, case, text, expected, observed):
    (tmp_path / "registry.yaml").write_bytes(text)
    monkeypatch.setenv("PDEOP_REGISTRY", str(tmp_path / "registry.yaml"))
    with pytest.raises(RegistryError) as error:
        registry()
    message = str(error.value)
    assert message.startswith(f"registry '{tmp_path / 'registry.yaml'}' {expected}") and "\n" not in message, message
    observed(message)


@pytest.mark.fault("a bundle whose SHA256SUMS is {case}", "one line naming SHA256SUMS and its expected lines")
@pytest.mark.parametrize(("case", "text", "expected"), [
    ("one token, no name", b"justonetoken\n", "SHA256SUMS line 1 is 'justonetoken', expected '<sha256>  <name>'"),
    ("not UTF-8", b"\xff\xfe garbage\n", "SHA256SUMS is not UTF-8 text (byte 0); expected lines '<sha256>  <name>'"),
])
def test_a_malformed_sha256sums_is_one_line(shipped, tmp_path, case, text, expected, observed):
    bundle = shutil.copytree(shipped, tmp_path / "bundle")
    (bundle / MANIFEST).write_bytes(text)
    with pytest.raises(CheckpointError) as error:
        load_pretrained(bundle)
    message = str(error.value)
    assert message.startswith(f"bundle '{bundle}' refused: {expected}") and "\n" not in message, message
    observed(message)


@pytest.mark.fault("a Poseidon checkpoint whose config.json is {case}", "one line naming config.json and {expected}")
@pytest.mark.parametrize(("case", "text", "expected"), [
    ("a JSON list", b"[1, 2]", "config.json holds a JSON list, expected an object"),
    ("not UTF-8", b'{"a": "\xff"}', "config.json is not UTF-8 text (byte 7)"),
    ("skip_connections: 3", b'{"skip_connections": 3}', "config.json key skip_connections is 3, expected a list"),
    ("use_conditioning: \"yes\"", b'{"use_conditioning": "yes"}', "config.json key use_conditioning is 'yes', "
                                                                   "expected true or false"),
    ("100,000 nested lists", b"[" * 100000 + b"]" * 100000, "config.json is nested too deeply to read"),
])
def test_a_poseidon_config_json_of_another_shape_is_one_line(tmp_path, case, text, expected, observed):
    (tmp_path / "config.json").write_bytes(text)
    with pytest.raises(CheckpointError) as error:
        poseidon_config(tmp_path)
    message = str(error.value)
    assert message.startswith(f"Poseidon checkpoint '{tmp_path}': {expected}") and "\n" not in message, message
    observed(message)


def test_a_poseidon_config_json_of_the_reference_types_is_read(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"skip_connections": [True, False, 1], "learn_residual": True}))
    config = poseidon_config(tmp_path)
    assert config["skip_connections"] == [1, 0, 1] and config["learn_residual"] is False  # not conditioned
