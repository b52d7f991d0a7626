"""One backup archive: a tar (optionally gzip-compressed) of files plus `manifest.json`.

The manifest says when the archive was made, by which callsight version, and for every file its size,
SHA-256 and what it is. It is the last member: each file is hashed while it is written, so a file is read
once. An archive is written under a temporary name, made owner-only, synced and renamed: a backup killed
midway leaves the previous archive under the final name as it was. Reading verifies every file against
the manifest before anything is extracted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import tarfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import BinaryIO

MANIFEST_NAME = "manifest.json"
FORMAT = "callsight-backup"
FORMAT_VERSION = 1
CHUNK = 1 << 20
PARTIAL_MARK = ".partial-"


class ArchiveError(RuntimeError):
    """The archive is unreadable, incomplete or does not match its manifest."""


@dataclass(frozen=True)
class Part:
    """A file to put into the archive: its name there, what it is, and where it comes from now."""

    name: str
    kind: str
    description: str
    source: Path
    origin: str = ""  # the path it had on the site (shown on restore), if not the source itself


@dataclass(frozen=True)
class Entry:
    """A file as the manifest records it."""

    name: str
    kind: str
    description: str
    size: int
    sha256: str
    origin: str = ""


@dataclass(frozen=True)
class Manifest:
    created_at: str
    callsight_version: str
    files: tuple[Entry, ...]
    facts: dict[str, object] = field(default_factory=dict)

    def by_kind(self, kind: str) -> list[Entry]:
        return [e for e in self.files if e.kind == kind]

    def to_json(self) -> str:
        body = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": self.created_at,
            "callsight_version": self.callsight_version,
            "facts": self.facts,
            "files": [asdict(e) for e in self.files],
        }
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Manifest:
        try:
            body = json.loads(text)
            if body.get("format") != FORMAT:
                raise ArchiveError("not a callsight backup (manifest format)")
            if body.get("format_version") != FORMAT_VERSION:
                raise ArchiveError(f"backup format version {body.get('format_version')!r} is not supported")
            files = tuple(Entry(**e) for e in body["files"])
            return cls(body["created_at"], body["callsight_version"], files, dict(body.get("facts") or {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise ArchiveError(f"unreadable manifest: {exc}") from exc


def check_member_name(name: str) -> str:
    """Pure: a relative path without `..`, or ArchiveError (nothing may be written outside the target)."""
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or name != str(path):
        raise ArchiveError(f"refusing a file name in the archive: {name!r}")
    return name


def compare(manifest: Manifest, found: dict[str, tuple[int, str]]) -> list[str]:
    """Pure: what differs between the manifest and the files found (name -> (size, sha256))."""
    problems = []
    expected = {e.name: e for e in manifest.files}
    for name in sorted(expected.keys() - found.keys()):
        problems.append(f"{name}: missing from the archive")
    for name in sorted(found.keys() - expected.keys()):
        problems.append(f"{name}: in the archive but not in its manifest")
    for name in sorted(expected.keys() & found.keys()):
        size, digest = found[name]
        if size != expected[name].size or digest != expected[name].sha256:
            problems.append(f"{name}: checksum mismatch (the file was altered or damaged)")
    return problems


class _HashingReader(io.RawIOBase):
    """Reads a file object and hashes what passes through."""

    def __init__(self, inner: BinaryIO) -> None:
        self.inner = inner
        self.digest = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.digest.update(data)
        self.size += len(data)
        return data


def partial_name(output: Path) -> Path:
    """Where an archive is written before it gets its final name (pid: two backups never share one)."""
    return output.with_name(f".{output.name}{PARTIAL_MARK}{os.getpid()}")


def remove_stale_partials(folder: Path) -> list[Path]:
    """Remove partial archives and work folders left by killed backups (whose process is gone)."""
    removed = []
    for path in folder.glob(f".*{PARTIAL_MARK}*") if folder.is_dir() else ():
        pid = path.name.rpartition(PARTIAL_MARK)[2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):  # ours: left before a pid reuse
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def write_archive(
    output: Path,
    parts: Iterable[Part],
    callsight_version: str,
    facts: dict[str, object],
    compress: bool,
    after_member: Callable[[str], None] = lambda _name: None,
) -> Manifest:
    """Write the archive to a temporary name beside `output` (0600), then rename it to `output`.
    `after_member` is called after each file (the fault test halts a backup there)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = partial_name(output)
    entries: list[Entry] = []
    created = datetime.now(UTC).replace(microsecond=0).isoformat()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz" if compress else "w") as tar:
            for part in parts:
                check_member_name(part.name)
                with part.source.open("rb") as f:
                    info = _tarinfo(part.name, os.fstat(f.fileno()).st_size)
                    reader = _HashingReader(f)
                    tar.addfile(info, reader)
                entries.append(
                    Entry(part.name, part.kind, part.description, reader.size, reader.digest.hexdigest(), part.origin)
                )
                after_member(part.name)
            manifest = Manifest(created, callsight_version, tuple(entries), facts)
            data = manifest.to_json().encode()
            tar.addfile(_tarinfo(MANIFEST_NAME, len(data)), io.BytesIO(data))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, output)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _sync_folder(output.parent)
    return manifest


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o600
    info.mtime = int(datetime.now(UTC).timestamp())
    return info


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def _open(path: Path) -> Iterator[tarfile.TarFile]:
    try:
        with tarfile.open(path, "r:*") as tar:
            yield tar
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise ArchiveError(f"{path}: unreadable archive ({type(exc).__name__}: {exc})") from exc


def _members(tar: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, BinaryIO]]:
    for info in tar:
        if not info.isfile():
            raise ArchiveError(f"{info.name}: not a regular file (links and folders are refused)")
        check_member_name(info.name)
        f = tar.extractfile(info)
        if f is None:
            raise ArchiveError(f"{info.name}: cannot be read")
        yield info, f


def verify_archive(path: Path) -> Manifest:
    """Read the whole archive and check every file against the manifest; writes nothing."""
    found: dict[str, tuple[int, str]] = {}
    manifest_text = None
    with _open(path) as tar:
        for info, f in _members(tar):
            if info.name == MANIFEST_NAME:
                manifest_text = f.read()
                continue
            if info.name in found:
                raise ArchiveError(f"{info.name}: twice in the archive")
            digest = hashlib.sha256()
            size = 0
            while chunk := f.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
            found[info.name] = (size, digest.hexdigest())
    if manifest_text is None:
        raise ArchiveError(f"{path}: no {MANIFEST_NAME} (an incomplete or foreign archive)")
    manifest = Manifest.from_json(manifest_text)
    problems = compare(manifest, found)
    if problems:
        raise ArchiveError(f"{path}: refused, nothing was restored:\n  " + "\n  ".join(problems))
    return manifest


def extract_archive(path: Path, manifest: Manifest, target: Path) -> dict[str, Path]:
    """Extract the manifest's files into `target` (owner-only), checking them again on the way.
    Returns name -> extracted path."""
    expected = {e.name: e for e in manifest.files}
    out: dict[str, Path] = {}
    with _open(path) as tar:
        for info, f in _members(tar):
            if info.name == MANIFEST_NAME:
                continue
            entry = expected.get(info.name)
            if entry is None:
                raise ArchiveError(f"{info.name}: not in the manifest")
            dest = target.joinpath(*PurePosixPath(info.name).parts)
            dest.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            digest = hashlib.sha256()
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as w:
                while chunk := f.read(CHUNK):
                    digest.update(chunk)
                    w.write(chunk)
                w.flush()
                os.fsync(w.fileno())
            if digest.hexdigest() != entry.sha256:
                raise ArchiveError(f"{info.name}: checksum mismatch while extracting (the archive changed?)")
            out[info.name] = dest
    missing = expected.keys() - out.keys()
    if missing:
        raise ArchiveError(f"missing from the archive while extracting: {sorted(missing)}")
    return out


def prune_archives(folder: Path, keep: int, pattern: str = "callsight-*.tar*") -> list[Path]:
    """Delete all but the newest `keep` archives named like the default output (by name: UTC stamps)."""
    archives = sorted((p for p in folder.glob(pattern) if p.is_file()), reverse=True)
    doomed = archives[keep:] if keep > 0 else []
    for path in doomed:
        path.unlink()
    return doomed
