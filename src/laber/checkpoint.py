"""Versioned, atomic, pickle-free checkpoints of replay buffers.

A checkpoint is a ``.npz`` archive (numpy arrays only; loaded with ``allow_pickle=False``) holding:

* ``__meta__``: UTF-8 JSON as a uint8 array: format name and version, the buffer's description (size, fields
  with shapes and dtypes, N-step settings), stored count, next index, the rng's ``bit_generator.state`` and the
  JSON part of the subclass's extra state;
* ``rows``: the stored rows of the record storage, ring order ``0 .. stored - 1``;
* ``pending/<field>``: N-step transitions still waiting for their window;
* ``nextof/...``: the ``next_of`` side store, free slots and pending links;
* ``stack/...``: the ``stack_compress`` side store (older frames of anchor rows) and free slots;
* ``extra/<key>``: array-valued extra state of a subclass.

The file is written to a temporary file in the same directory, flushed to disk, then renamed over ``path``, so
a crash never leaves a half-written checkpoint under the final name.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from laber.buffers import ReplayBuffer

FORMAT = "laber-replay-buffer"
VERSION = 1


def _json_default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    raise TypeError(f"checkpoint state is not JSON-serialisable: {obj!r}")


def save(buffer: ReplayBuffer, path: str | os.PathLike[str]) -> None:
    """Write ``buffer`` to ``path`` atomically (see the module docstring)."""
    target = Path(path)
    extra = buffer._checkpoint_extra()
    arrays: dict[str, np.ndarray] = {"rows": buffer._store[: buffer._stored].view(np.uint8)}
    json_extra: dict[str, Any] = {}
    for key, value in extra.items():
        if isinstance(value, np.ndarray):
            arrays[f"extra/{key}"] = value
        else:
            json_extra[key] = value
    if buffer._nstep is not None:
        for key, value in buffer._nstep.pending().items():
            arrays[f"pending/{key}"] = value
    if buffer._next_of is not None:
        for key, value in buffer._next_of.state().items():
            arrays[f"nextof/{key}"] = value
    if buffer._stack is not None:
        for key, value in buffer._stack.state().items():
            arrays[f"stack/{key}"] = value
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "buffer": buffer._describe(),
        "stored": buffer._stored,
        "next": buffer._next,
        "rng": buffer._rng.bit_generator.state,
        "extra": json_extra,
    }
    arrays["__meta__"] = np.frombuffer(json.dumps(meta, default=_json_default).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or ".")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load(buffer: ReplayBuffer, path: str | os.PathLike[str]) -> None:
    """Restore ``buffer`` from ``path``; the buffer's fields must match the checkpoint's exactly."""
    with np.load(Path(path), allow_pickle=False) as archive:
        if "__meta__" not in archive.files:
            raise ValueError(f"{str(path)!r} is not a laber checkpoint (no __meta__ entry)")
        meta = json.loads(archive["__meta__"].tobytes().decode())
        if meta.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not a laber replay-buffer checkpoint, format={meta.get('format')!r}")
        if meta.get("version") != VERSION:
            raise ValueError(
                f"checkpoint version {meta.get('version')!r} is not supported (this laber reads {VERSION})"
            )
        mine = buffer._describe()
        theirs = meta["buffer"]
        if any(theirs.get(k) != mine[k] for k in ("fields", "nstep", "next_of", "stack_compress")):
            raise ValueError(
                f"checkpoint fields/N-step {theirs['fields']}, {theirs['nstep']} do not match this buffer's "
                f"{mine['fields']}, {mine['nstep']}"
            )
        rows = archive["rows"]
        stored = int(meta["stored"])
        itemsize = buffer._record.itemsize
        if stored > buffer._size or rows.dtype != np.uint8 or rows.shape != (stored * itemsize,):
            raise ValueError(f"checkpoint holds {stored} rows of {theirs['size']}; this buffer has size {buffer._size}")
        pending = {k.removeprefix("pending/"): archive[k] for k in archive.files if k.startswith("pending/")}
        next_of = {k.removeprefix("nextof/"): archive[k] for k in archive.files if k.startswith("nextof/")}
        stack = {k.removeprefix("stack/"): archive[k] for k in archive.files if k.startswith("stack/")}
        extra: dict[str, Any] = dict(meta.get("extra", {}))
        extra.update({k.removeprefix("extra/"): archive[k] for k in archive.files if k.startswith("extra/")})
    # everything read and checked: now overwrite the buffer
    buffer.clear()
    buffer._store[:stored] = rows.view(buffer._record)
    buffer._stored = stored
    buffer._next = int(meta["next"]) % buffer._size
    buffer._rng.bit_generator.state = meta["rng"]
    if buffer._nstep is not None:
        buffer._nstep.restore(pending)
    if buffer._next_of is not None:
        buffer._next_of.restore(next_of)
    if buffer._stack is not None:
        buffer._stack.restore(stack)
    buffer._restore_extra(extra)
