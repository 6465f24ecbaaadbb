"""Saving and loading indexes: a directory of named .npy arrays.

Layout of a saved index:
    manifest.json   format name and version, library version, and for every
                    array its file, shape, dtype and sha256
    config.json     the IndexConfig
    <name>.npy      arrays, loadable with np.load(mmap_mode="r")
    <sub>/          nested indexes (a multi-vector index keeps its document
                    index here), each a complete saved index of its own

Saves are atomic: everything is written and fsynced into a temporary sibling
directory `.NAME.tmp-*`, which then replaces the index at the path in one
exchange where the OS allows it (annlib._fs). Elsewhere the old index is
renamed aside (`.NAME.old-*`) first; a save killed between the two renames is
finished (or, if the new index was incomplete, rolled back) by the next save
or load, and the leftovers of killed saves are removed then.

Loading checks what the manifest says against the files before it reads them
(names, shapes, dtypes, file sizes), and with verify=True every array's
sha256: a damaged or hostile directory gives a ValueError (or an OSError from
the file system), never a crash or an allocation beyond the files' sizes.
verify=True guarantees the arrays are the bytes that were saved; verify=False
still guarantees structural consistency (and the searchers check their own
arrays' ranges), but not that the values are the saved ones.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from . import _core, _fs

FORMAT_NAME = "annlib-index"
# The arrays of each version are defined in csrc/index/index_format.h; a reader
# refuses versions newer than its own with a message saying so.
FORMAT_VERSION = _core.FORMAT_VERSION
OLDEST_FORMAT_VERSION = _core.OLDEST_FORMAT_VERSION
_HASH_CHUNK = 1 << 22
_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-[0-9a-f]{12}$")
_MAX_NDIM = 8
# A load that finds no index while a live save is between its two renames
# waits this long for it (only where the OS cannot exchange directories).
_WAIT_FOR_SAVE_S = 5.0


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _leftovers(path: Path) -> list[tuple[Path, str]]:
    """(directory, "tmp" or "old") for every temporary sibling of `path` a save made."""
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return []
    found = []
    for entry in entries:
        m = _LEFTOVER.match(entry.name)
        if m and m["name"] == path.name:
            found.append((entry, m["kind"]))
    return found


def _is_complete(directory: Path) -> bool:
    """Whether a save got as far as writing the manifest (the last file it writes)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME


def recover(path) -> bool:
    """Finishes or rolls back a save of `path` that was killed between its two
    renames (no index at the path: the newest complete new index is moved in,
    else the old one back), then removes the leftovers of killed saves.
    Running saves are never touched. Returns whether live saves of the path
    remain (their directories are claimed)."""
    path = Path(path).absolute()
    abandoned, live = [], False
    for directory, kind in _leftovers(path):
        claim = _fs.claim_if_abandoned(directory)
        if claim is None:
            live = True
        else:
            abandoned.append((directory, kind, claim))
    try:
        if not path.exists():
            complete = [d for d, kind, _ in abandoned if kind == "tmp" and _is_complete(d)]
            old = [d for d, kind, _ in abandoned if kind == "old"]
            for choice in (complete, old):
                if choice:
                    newest = max(choice, key=lambda d: (d / "manifest.json").stat().st_mtime_ns)
                    os.rename(newest, path)
                    _fs.fsync_dir(path.parent)
                    break
        for directory, _, _ in abandoned:
            if directory.exists():
                shutil.rmtree(directory, ignore_errors=True)
    finally:
        for _, _, claim in abandoned:
            claim.release()
    return live


def _check_replaceable(path: Path) -> None:
    if path.is_symlink() or not path.is_dir():
        raise ValueError(f"{path} exists and is not an annlib index directory; refusing to overwrite it")
    if not (path / "manifest.json").exists() and any(path.iterdir()):
        raise ValueError(f"{path} exists and is not an annlib index; refusing to overwrite it")


def _install(tmp: Path, path: Path) -> None:
    """Puts the complete index at tmp in place of whatever is at path."""
    if not path.exists():
        os.rename(tmp, path)
        _fs.fsync_dir(path.parent)
        return
    _check_replaceable(path)
    if _fs.exchange(tmp, path):
        _fs.fsync_dir(path.parent)
        shutil.rmtree(tmp, ignore_errors=True)  # the old index, now at tmp
        return
    backup = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
    with _fs.claim(path):  # the lock moves with the directory: the backup is ours
        os.rename(path, backup)
        try:
            os.rename(tmp, path)
        except BaseException:
            if not path.exists():
                os.rename(backup, path)
            raise
        _fs.fsync_dir(path.parent)
    shutil.rmtree(backup, ignore_errors=True)


def save_index(path, config_json: str, arrays: dict[str, np.ndarray], library_version: str,
               subindexes: dict | None = None) -> Path:
    """Atomically writes config and arrays as an index directory at path;
    subindexes maps a directory name to an object with save(path), written
    inside it before the whole is put in place."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    if path.exists():
        _check_replaceable(path)  # before the work, not only after it
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    with _fs.claim(tmp):
        try:
            entries = {}
            for name, array in arrays.items():
                if not name.isidentifier():
                    raise ValueError(f"array name {name!r} is not a valid identifier")
                file = tmp / f"{name}.npy"
                arr = np.ascontiguousarray(array)
                with open(file, "wb") as f:
                    np.save(f, arr, allow_pickle=False)
                    f.flush()
                    os.fsync(f.fileno())
                entries[name] = {"file": file.name, "shape": list(arr.shape), "dtype": arr.dtype.str,
                                 "sha256": _sha256_of(file)}
            for name, child in (subindexes or {}).items():
                if not name.isidentifier():
                    raise ValueError(f"subindex name {name!r} is not a valid identifier")
                child.save(tmp / name)
            with open(tmp / "config.json", "w") as f:
                f.write(config_json)
                f.flush()
                os.fsync(f.fileno())
            manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                        "library_version": library_version, "arrays": entries,
                        "subindexes": sorted(subindexes or {}),
                        "config_sha256": hashlib.sha256(config_json.encode()).hexdigest()}
            with open(tmp / "manifest.json", "w") as f:  # last: a manifest marks a complete index
                json.dump(manifest, f, indent=2, sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            _fs.fsync_dir(tmp)
            _install(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return path


def _wait_for_index(path: Path) -> None:
    """Makes sure an index is at path: recovers from a killed save, and waits
    for a live one caught between its two renames. FileNotFoundError if none."""
    deadline = time.monotonic() + _WAIT_FOR_SAVE_S
    while not path.exists():
        try:
            live = recover(path)
        except OSError:  # read-only file system: nothing can be recovered here
            live = False
        if path.exists() or not live or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if not path.exists():
        raise FileNotFoundError(f"no index at {path}")


def _manifest_entry(manifest_file: Path, name, entry) -> tuple[str, tuple, np.dtype, str | None]:
    """(file name, shape, dtype, sha256) of one array entry, each checked for type and range."""
    where = f"{manifest_file}: array {name!r}"
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"{manifest_file}: array name {name!r} is not a valid identifier")
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: entry is not a JSON object")
    file, shape, dtype, sha = entry.get("file"), entry.get("shape"), entry.get("dtype"), entry.get("sha256")
    if file != f"{name}.npy":  # no other file, no path outside the index
        raise ValueError(f"{where}: names file {file!r}, expected {name}.npy")
    if (not isinstance(shape, list) or len(shape) > _MAX_NDIM
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in shape)):
        raise ValueError(f"{where}: shape {shape!r} is not a list of non-negative integers")
    try:
        dt = np.dtype(dtype) if isinstance(dtype, str) else None
    except TypeError:
        dt = None
    if dt is None or dt.kind not in "biuf" or dt.str != dtype:
        raise ValueError(f"{where}: dtype {dtype!r} is not a numeric array type")
    if sha is not None and not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
        raise ValueError(f"{where}: sha256 {sha!r} is not a hex digest")
    return file, tuple(shape), dt, sha


def _check_npy_header(file: Path, shape: tuple, dtype: np.dtype) -> None:
    """The .npy header must describe the manifest's array and the file hold
    exactly its bytes, so loading never allocates beyond the file's size."""
    try:
        with open(file, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                header = np.lib.format.read_array_header_1_0(f)
            elif version in ((2, 0), (3, 0)):
                header = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
            offset = f.tell()
    except OSError:
        raise
    except Exception as exc:  # numpy's header parser raises several kinds (SyntaxError, TokenError, ...)
        raise ValueError(f"array file {file} has a damaged header: {exc!r}") from exc
    file_shape, fortran, file_dtype = header
    if tuple(file_shape) != shape or file_dtype != dtype or fortran:
        raise ValueError(f"array file {file} holds shape {tuple(file_shape)} / dtype {file_dtype.str}, "
                         f"manifest says {shape} / {dtype.str}")
    expected = offset + math.prod(shape) * dtype.itemsize
    size = file.stat().st_size
    if size != expected:
        raise ValueError(f"array file {file} is truncated or padded: {size} bytes, its header implies {expected}")


def load_index(path, *, mmap: bool = True, verify: bool = True) -> tuple[str, dict[str, np.ndarray], dict]:
    """Reads an index directory; returns (config_json, arrays, manifest).

    Raises FileNotFoundError when there is no index at path, and ValueError
    naming the offending file for an unknown format or version, a malformed
    manifest, a missing, truncated or corrupt array, or a checksum mismatch.
    """
    path = Path(path)
    _wait_for_index(path)
    if _leftovers(path):
        try:
            recover(path)  # leftovers of killed saves; best effort
        except OSError:
            pass
    manifest_file = path / "manifest.json"
    if not path.is_dir():
        raise ValueError(f"{path} is not an index directory")
    if not manifest_file.is_file():
        raise ValueError(f"{manifest_file} is missing: {path} is not a saved annlib index")
    try:
        manifest = json.loads(manifest_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{manifest_file} is corrupt: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ValueError(f"{manifest_file} does not describe an annlib index")
    version = manifest.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < OLDEST_FORMAT_VERSION:
        raise ValueError(f"{manifest_file}: index format version {version!r} is not supported "
                         f"(this annlib reads versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION})")
    if version > FORMAT_VERSION:
        raise ValueError(f"{manifest_file}: index format version {version} is newer than this annlib reads "
                         f"(versions {OLDEST_FORMAT_VERSION} to {FORMAT_VERSION}); upgrade annlib to load it")
    entries, subindexes = manifest.get("arrays", {}), manifest.get("subindexes", [])
    if not isinstance(entries, dict) or not isinstance(subindexes, list):
        raise ValueError(f"{manifest_file}: 'arrays' must be an object and 'subindexes' a list")
    config_file = path / "config.json"
    if not config_file.is_file() or config_file.is_symlink():
        raise ValueError(f"{config_file} is missing")
    config_json = config_file.read_text()
    if hashlib.sha256(config_json.encode()).hexdigest() != manifest.get("config_sha256"):
        raise ValueError(f"{config_file} does not match its checksum in the manifest (corrupt or edited)")
    arrays = {}
    for name, entry in entries.items():
        file_name, shape, dtype, sha = _manifest_entry(manifest_file, name, entry)
        file = path / file_name
        if file.is_symlink() or not file.is_file():
            raise ValueError(f"array file {file} is missing" + (" (a symlink)" if file.is_symlink() else ""))
        _check_npy_header(file, shape, dtype)
        if verify and _sha256_of(file) != sha:
            raise ValueError(f"array file {file} is corrupt: its sha256 does not match the manifest")
        try:
            arr = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"array file {file} cannot be read: {exc}") from exc
        if arr.shape != shape or arr.dtype != dtype:  # the file changed under us
            raise ValueError(f"array file {file} has shape {arr.shape} / dtype {arr.dtype.str}, "
                             f"manifest says {shape} / {dtype.str}")
        arrays[name] = arr
    for name in subindexes:
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"{manifest_file}: nested index name {name!r} is not a valid identifier")
        nested = path / name
        if nested.is_symlink() or not (nested / "manifest.json").is_file():
            raise ValueError(f"nested index {nested} is missing")
    return config_json, arrays, manifest



# ---- pickling through the saved format --------------------------------------------------
# An index pickles as the files its save() writes, so what crosses a process boundary
# (multiprocessing, joblib, Ray) is checked on arrival exactly like a load from disk.

def saved_files(save) -> dict[str, bytes]:
    """{path relative to the index directory: contents} of what save(path) writes."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="annlib-pickle-") as tmp:
        root = Path(tmp) / "index"
        save(root)
        return {file.relative_to(root).as_posix(): file.read_bytes()
                for file in sorted(root.rglob("*")) if file.is_file()}


def restore_files(files: dict[str, bytes], load):
    """load(path) of a directory holding `files` (saved_files' output); the arrays must
    be read into memory (mmap=False), as the directory is removed afterwards."""
    import tempfile

    if not isinstance(files, dict):
        raise ValueError("not a pickled annlib index")
    with tempfile.TemporaryDirectory(prefix="annlib-unpickle-") as tmp:
        root = Path(tmp) / "index"
        for name, data in files.items():
            file = (root / name).resolve()
            if not isinstance(data, bytes) or root.resolve() not in file.parents:
                raise ValueError(f"pickled index file {name!r} is not a file inside the index")
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)
        return load(root)
