"""Saving and loading indexes: a directory of named .npy arrays.

Layout of a saved index:
    manifest.json   format name and version, library version, and for every
                    array its file, shape, dtype and sha256
    config.json     the IndexConfig
    <name>.npy      arrays, loadable with np.load(mmap_mode="r")
    <sub>/          nested indexes (a multi-vector index keeps its document
                    index here), each a complete saved index of its own

Saves are atomic: everything is written and fsynced into a temporary sibling
directory which is then renamed into place; an existing index at the path is
moved aside first and removed only after the new one is in place, so a crash
at any point leaves a complete index (old or new) behind.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

FORMAT_NAME = "annlib-index"
FORMAT_VERSION = 1  # bump on incompatible layout changes
_HASH_CHUNK = 1 << 22


def _sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_index(path, config_json: str, arrays: dict[str, np.ndarray], library_version: str,
               subindexes: dict | None = None) -> Path:
    """Atomically writes config and arrays as an index directory at path;
    subindexes maps a directory name to an object with save(path), written
    inside it before the whole is renamed into place."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
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
        (tmp / "config.json").write_text(config_json)
        manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION,
                    "library_version": library_version, "arrays": entries,
                    "subindexes": sorted(subindexes or {}),
                    "config_sha256": hashlib.sha256(config_json.encode()).hexdigest()}
        with open(tmp / "manifest.json", "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        _fsync_dir(tmp)
        backup = None
        if path.exists():
            if not (path / "manifest.json").exists() and any(path.iterdir()):
                raise ValueError(f"{path} exists and is not an annlib index; refusing to overwrite it")
            backup = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:12]}"
            os.rename(path, backup)
        os.rename(tmp, path)
        _fsync_dir(path.parent)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_index(path, *, mmap: bool = True, verify: bool = True) -> tuple[str, dict[str, np.ndarray], dict]:
    """Reads an index directory; returns (config_json, arrays, manifest).

    Raises ValueError naming the offending file for an unknown format or
    version, a missing, truncated or corrupt array, or a checksum mismatch.
    """
    path = Path(path)
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
    if version != FORMAT_VERSION:
        raise ValueError(f"{manifest_file}: index format version {version!r} is not supported "
                         f"(this annlib reads version {FORMAT_VERSION}); rebuild or upgrade annlib")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{config_file} is missing")
    config_json = config_file.read_text()
    if hashlib.sha256(config_json.encode()).hexdigest() != manifest.get("config_sha256"):
        raise ValueError(f"{config_file} does not match its checksum in the manifest (corrupt or edited)")
    arrays = {}
    for name, entry in manifest.get("arrays", {}).items():
        file = path / entry["file"]
        if not file.is_file():
            raise ValueError(f"array file {file} is missing")
        if verify and _sha256_of(file) != entry["sha256"]:
            raise ValueError(f"array file {file} is corrupt: its sha256 does not match the manifest")
        try:
            arr = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise ValueError(f"array file {file} cannot be read: {exc}") from exc
        if list(arr.shape) != entry["shape"] or arr.dtype.str != entry["dtype"]:
            raise ValueError(f"array file {file} has shape {arr.shape} / dtype {arr.dtype.str}, "
                             f"manifest says {tuple(entry['shape'])} / {entry['dtype']}")
        arrays[name] = arr
    for name in manifest.get("subindexes", []):
        if not (path / name / "manifest.json").is_file():
            raise ValueError(f"nested index {path / name} is missing")
    return config_json, arrays, manifest
