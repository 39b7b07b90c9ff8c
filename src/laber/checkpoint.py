"""Versioned, atomic, pickle-free checkpoints of replay buffers.

A checkpoint (format version 1) is an ``.npz`` archive of ``.npy`` members, numpy arrays only (read with
``allow_pickle=False``):

* ``__meta__``: UTF-8 JSON as a uint8 array: ``format`` (``"laber-replay-buffer"``), ``version`` (1), ``buffer``
  (the buffer's size, its fields in schema order with shapes and dtypes, N-step settings, ``next_of`` and
  ``stack_compress``), ``stored`` (rows stored), ``next`` (the ring index the next row goes to), ``rng`` (the
  generator's ``bit_generator.state``) and ``extra`` (the JSON part of a subclass's extra state);
* ``rows``: uint8, the raw records at ring positions ``0 .. stored - 1`` (``stored * itemsize`` bytes, hidden
  columns such as links and priorities included). The oldest row is at ``next`` when the ring is full
  (``stored == size``), else rows are oldest first and ``next == stored``;
* ``pending/<field>``: the N-step transitions still waiting for their window (absent when there are none);
* ``nextof/side/<field>``, ``nextof/free``, ``nextof/pending``: the ``next_of`` side store, its free slots and
  its pending links (rows ``(source position, slot, steps)``);
* ``stack/side/<field>``, ``stack/free``: the ``stack_compress`` side store (older frames of anchor rows) and
  its free slots;
* ``extra/<key>``: array-valued extra state of a subclass.

``save`` writes to a temporary file ``.<name>.laber-<16 hex digits>.tmp`` next to ``path`` (created with the
usual permissions, ``0o666`` less the umask), flushes it to disk, then renames it over ``path``, so a crash never
leaves a half-written checkpoint under the final name. A save killed before the rename leaves its temporary
behind; the next save to the same ``path`` deletes such leftovers: only files named exactly like laber's
temporaries for that ``path`` that no live save holds (each save keeps an exclusive ``flock`` on its temporary),
and temporaries of laber 0.1.0 (``.<name>.XXXXXXXX.tmp``, with the zip header of a checkpoint, an hour old).

``load`` reads and checks the whole file before it changes anything: metadata, the fields against the buffer's
(one ``ValueError`` naming the field that differs), every member's header, dtype and shape, the rng state against
the buffer's bit generator, the side stores, every link of every row (``next_of`` links to a newer stored row
or to a used slot, ``stack_compress`` anchors in range and the oldest row an anchor), the pending links and a
subclass's extra state (``check_checkpoint_extra``: priorities finite and ``>= 0``, a numeric running maximum).
On any error it raises ``ValueError`` naming ``path`` and leaves the buffer exactly as it was. Rows are then read
straight into the buffer's storage (the checks stream through them once, in chunks), so loading needs the
buffer's own memory plus a few MiB, not a second copy of the file.

Size: a buffer of the checkpoint's size gets the ring back exactly (same positions, next index and stored
count). A buffer of another size gets the newest ``k = min(stored, size)`` rows, oldest first at positions
``0 .. k - 1``, with ``next = k % size`` (cpprb keeps the newest rows too): what a buffer of that size holds after
seeing those transitions. ``next_of`` links and pending links are remapped, side stores compacted to the slots
the kept rows use, the oldest kept row becomes a ``stack_compress`` anchor when its older frames were in dropped
rows, and priorities move with their rows (the sum tree is rebuilt; the running maximum is kept). Pending N-step
transitions and the rng state are restored in every case.

The buffer is reached only through its checkpoint interface (:mod:`laber.state`, no private attribute):
``save`` serialises the ``BufferState`` that ``buffer.checkpoint_state()`` hands out; ``load`` checks the file
against that state (and the extra state with ``buffer.check_checkpoint_extra``), then passes the checked result,
a ``BufferRestore``, to ``buffer.restore_checkpoint``, which lets its ``write_rows`` stream the kept rows from the
file into the record memory. ``save`` and ``load`` do not take the buffer's lock themselves:
``ReplayBuffer.save_checkpoint`` / ``load_checkpoint`` hold it around the whole call.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import secrets
import stat
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np

from laber.fields import Field
from laber.links import LINK, STACK_LINK, StackLinks
from laber.state import BufferRestore, BufferState, Checkpointable

if sys.platform != "win32":
    import fcntl

FORMAT = "laber-replay-buffer"
VERSION = 1

_CHUNK_BYTES = 1 << 20  # rows are streamed in chunks of 1 MiB
_FRESH_S = 60.0  # an empty temporary younger than this may be one a live save is creating: left alone
_LEGACY_AGE_S = 3600.0  # laber 0.1.0's temporaries (no lock) are deleted only when older than this
_ACTIVE: set[str] = set()  # temporaries this process is writing now
_ACTIVE_LOCK = threading.Lock()
# exceptions that reading a malformed member can raise (I/O errors, OSError, are not caught: they propagate)
_READ_ERRORS = (ValueError, TypeError, KeyError, IndexError, EOFError, OverflowError, zipfile.BadZipFile, zlib.error)


# ============================================================================================================ saving
def _json_default(obj: object) -> object:
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):  # e.g. the key of an MT19937 state
        return obj.tolist()
    raise TypeError(f"checkpoint state is not JSON-serialisable: {obj!r}")


def _as_path(path: object) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or an os.PathLike, got path={path!r}")
    return Path(os.fspath(path))


def _arrays(state: BufferState) -> dict[str, np.ndarray]:
    """Every member of the checkpoint of a buffer in ``state`` (see the module docstring)."""
    _, records = _host(state)
    arrays: dict[str, np.ndarray] = {"rows": records[: state.stored].view(np.uint8)}
    json_extra: dict[str, Any] = {}
    for key, value in state.extra.items():
        if isinstance(value, np.ndarray):
            arrays[f"extra/{key}"] = value
        else:
            json_extra[key] = value
    if state.nstep is not None:
        for key, value in state.nstep.pending.items():
            arrays[f"pending/{key}"] = value
    if state.next_of is not None:
        for key, value in state.next_of.arrays.items():
            arrays[f"nextof/{key}"] = value
    if state.stack is not None:
        for key, value in state.stack.arrays.items():
            arrays[f"stack/{key}"] = value
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "buffer": state.description,
        "stored": state.stored,
        "next": state.next,
        "rng": state.rng.state,
        "extra": json_extra,
    }
    text = json.dumps(meta, default=_json_default, allow_nan=False)
    arrays["__meta__"] = np.frombuffer(text.encode(), dtype=np.uint8)
    return arrays


def _temporary_patterns(name: str) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """laber's temporary names for a target called ``name``: this version's, and laber 0.1.0's (mkstemp's)."""
    ours = re.compile(rf"\.{re.escape(name)}\.laber-[0-9a-f]{{16}}\.tmp")
    legacy = re.compile(rf"\.{re.escape(name)}\.[a-z0-9_]{{8}}\.tmp")
    return ours, legacy


def _looks_like_legacy_temporary(fd: int) -> bool:
    """Starts like a checkpoint that laber 0.1.0 was writing: a zip local header whose member is ``rows.npy``."""
    os.lseek(fd, 0, os.SEEK_SET)
    head = os.read(fd, 38)
    return len(head) == 38 and head[:4] == b"PK\x03\x04" and head[26:28] == b"\x08\x00" and head[30:] == b"rows.npy"


def _remove_if_stale(path: str, *, legacy: bool, now: float) -> bool:
    """Delete the temporary ``path`` if no live save holds it (see the module docstring); True if deleted."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    except OSError:
        return False
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return False
        age = now - st.st_mtime
        if sys.platform != "win32":
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # a live save holds it
        elif age < _LEGACY_AGE_S:
            return False
        if legacy:
            if age < _LEGACY_AGE_S or not _looks_like_legacy_temporary(fd):
                return False
        elif st.st_size == 0 and age < _FRESH_S:
            return False  # possibly created a moment ago by a save that has not taken its lock yet
        now_st = os.stat(path, follow_symlinks=False)
        if (now_st.st_dev, now_st.st_ino) != (st.st_dev, st.st_ino):
            return False
        if sys.platform == "win32":  # an open file cannot be deleted there
            os.close(fd)
            fd = -1
        os.unlink(path)
        return True
    except OSError:
        return False
    finally:
        if fd >= 0:
            os.close(fd)


def _remove_stale_temporaries(path: str | os.PathLike[str]) -> list[str]:
    """Delete the temporaries that killed saves to ``path`` left behind; returns the deleted paths.

    Only files named exactly like laber's temporaries for ``path`` are considered (``.<name>.laber-<16 hex>.tmp``,
    and laber 0.1.0's ``.<name>.XXXXXXXX.tmp`` when it holds the start of a checkpoint and is an hour old), never
    symlinks or directories, never a temporary that a live save holds locked (or, without ``flock``, one younger
    than an hour). ``save`` calls this before writing.
    """
    target = _as_path(path)
    ours, legacy = _temporary_patterns(target.name)
    directory = str(target.parent)
    try:
        names = [e.name for e in os.scandir(directory) if not e.is_symlink()]
    except OSError:
        return []
    removed = []
    now = time.time()
    for name in names:
        is_ours = ours.fullmatch(name) is not None
        if not is_ours and legacy.fullmatch(name) is None:
            continue
        candidate = os.path.join(directory, name)
        with _ACTIVE_LOCK:
            if candidate in _ACTIVE:
                continue
        if _remove_if_stale(candidate, legacy=not is_ours, now=now):
            removed.append(candidate)
    return removed


def _create_temporary(target: Path) -> tuple[int, str]:
    """A new, exclusively created and ``flock``-ed temporary next to ``target``: its descriptor and path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(str(target.parent), f".{target.name}.laber-{secrets.token_hex(8)}.tmp")
        with _ACTIVE_LOCK:
            _ACTIVE.add(tmp)
        try:
            fd = os.open(tmp, flags, 0o666)  # the process umask applies, as for any new file
        except FileExistsError:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(tmp)
            continue
        except BaseException:
            with _ACTIVE_LOCK:
                _ACTIVE.discard(tmp)
            raise
        if sys.platform != "win32":
            fcntl.flock(fd, fcntl.LOCK_EX)  # held until the rename: marks the temporary as live
        return fd, tmp
    raise FileExistsError(f"could not create a temporary file next to {str(target)!r}")


def fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable where the platform allows it."""
    try:
        fd = os.open(str(directory), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_CHUNK = 1 << 20


def _write_npz(fh: IO[bytes], arrays: dict[str, np.ndarray]) -> None:
    """The archive ``np.savez`` writes (stored, zip64, one ``.npy`` member per array), but each array's bytes go
    out in 1 MiB slices of its own memory: saving a memory-mapped or shared buffer never copies it whole."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, array in arrays.items():
            flat = np.ascontiguousarray(array)
            with zf.open(f"{name}.npy", "w", force_zip64=True) as out:
                header = np.lib.format.header_data_from_array_1_0(flat)
                try:
                    np.lib.format.write_array_header_1_0(out, header)  # what np.savez writes
                except ValueError:  # a header over 64 KiB: format 2.0
                    np.lib.format.write_array_header_2_0(out, header)
                data = memoryview(flat.reshape(-1).view(np.uint8).data) if flat.size else memoryview(b"")
                for start in range(0, len(data), _CHUNK):
                    out.write(data[start : start + _CHUNK])


def _host(state: BufferState) -> tuple[np.dtype[Any], np.ndarray]:
    """The record layout and record array of a buffer in host memory (a named ``ValueError`` on a device)."""
    if state.record is None or state.records is None:
        raise ValueError(
            f"checkpoints of buffers on a torch device are not supported yet (storage: {state.storage}); "
            f"copy the rows to a host buffer (get_all_transitions, then add) and checkpoint that"
        )
    return state.record, state.records


def save(buffer: Checkpointable, path: str | os.PathLike[str]) -> None:
    """Write ``buffer`` to ``path`` atomically (format and temporaries: see the module docstring).

    The caller holds the buffer's lock for the whole call (``ReplayBuffer.save_checkpoint`` does), so the rows
    are written as they are at one moment."""
    state = buffer.checkpoint_state()
    _host(state)
    target = _as_path(path)
    arrays = _arrays(state)
    write_atomically(target, lambda fh: _write_npz(fh, arrays))


def write_atomically(target: Path, write: Callable[[IO[bytes]], object]) -> None:
    """``write(fh)`` into a temporary file next to ``target``, flushed to disk, then renamed over ``target``:
    a crash never leaves a half-written file under the final name. Stale temporaries of earlier killed writes
    to ``target`` (laber's own names only, never one a live write holds) are removed first; the new file gets
    the usual permissions (``0o666`` less the umask); the directory is fsynced after the rename. Used by
    checkpoints and by cpprb transitions files (``laber.transitions``)."""
    _remove_stale_temporaries(target)
    fd, tmp = _create_temporary(target)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            if sys.platform != "win32":
                os.replace(tmp, target)  # still open and locked: no other save can take it for a leftover
        if sys.platform == "win32":
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE.discard(tmp)
    fsync_directory(target.parent)


# ============================================================================================================ loading
class _Reader:
    """The members of one open checkpoint archive, with errors that name the file."""

    def __init__(self, zf: zipfile.ZipFile, path: str) -> None:
        self.zf = zf
        self.path = path
        self.names = [info.filename for info in zf.infolist()]

    def malformed(self, what: str) -> NoReturn:
        raise ValueError(f"{self.path!r} is not a valid laber checkpoint: {what}")

    def array(self, member: str) -> np.ndarray:
        """A whole (small) member, read with ``allow_pickle=False``."""
        try:
            with self.zf.open(member) as fp:
                arr: np.ndarray = np.lib.format.read_array(fp, allow_pickle=False)
                if fp.read(1):
                    raise ValueError("trailing bytes after the array data")
        except _READ_ERRORS as exc:
            self.malformed(f"entry {member!r} is not a readable numpy array ({exc})")
        return arr

    def open_rows(self, expected_bytes: int) -> IO[bytes]:
        """The ``rows`` member, positioned at its data, after checking its header: uint8, ``expected_bytes``."""
        fp = self.zf.open("rows.npy")
        try:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                fp.close()
                self.malformed(f"entry 'rows' has .npy format version {version} (expected 1.0 or 2.0)")
        except _READ_ERRORS as exc:
            fp.close()
            self.malformed(f"entry 'rows' cannot be read ({exc})")
        if dtype != np.dtype(np.uint8) or shape != (expected_bytes,):
            fp.close()
            self.malformed(
                f"entry 'rows' must be uint8 of shape ({expected_bytes},) for its stored rows, "
                f"got dtype {dtype} and shape {shape}"
            )
        del fortran  # irrelevant for one dimension
        return fp

    def read_chunks(self, fp: IO[bytes], nbytes: int) -> Iterator[bytes]:
        """The next ``nbytes`` of ``fp``, in chunks of at most ``_CHUNK_BYTES`` (never more held at once)."""
        done = 0
        while done < nbytes:
            try:
                data = fp.read(min(nbytes - done, _CHUNK_BYTES))
            except _READ_ERRORS as exc:
                self.malformed(f"entry 'rows' cannot be read ({exc})")
            if not data:
                self.malformed(f"entry 'rows' ends early, {nbytes - done} bytes short")
            done += len(data)
            yield data

    def read_exact(self, fp: IO[bytes], nbytes: int) -> bytes:
        """The next ``nbytes`` of ``fp`` (one chunk's worth at most, in practice)."""
        parts = list(self.read_chunks(fp, nbytes))
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_into(self, fp: IO[bytes], out: memoryview) -> None:
        """Fill ``out`` from ``fp``, a chunk at a time."""
        done = 0
        for data in self.read_chunks(fp, len(out)):
            out[done : done + len(data)] = data
            done += len(data)

    def expect_end(self, fp: IO[bytes]) -> None:
        """``fp`` is at the end of its member (reading there also checks the member's CRC)."""
        try:
            if fp.read(1):
                self.malformed("entry 'rows' holds more bytes than its header says")
        except _READ_ERRORS as exc:
            self.malformed(f"entry 'rows' cannot be read ({exc})")


def _open_archive(path: Path, name: str) -> zipfile.ZipFile:
    with open(path, "rb") as fh:
        head = fh.read(6)
    if head == b"\x93NUMPY":
        raise ValueError(
            f"{name!r} is not a laber checkpoint: it is a .npy file (one array); checkpoints are the .npz "
            f"archives that save_checkpoint writes"
        )
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise ValueError(
            f"{name!r} is not a laber checkpoint: not an .npz (zip) archive ({exc}); checkpoints are the .npz "
            f"archives that save_checkpoint writes"
        ) from None


def _int(value: object) -> bool:
    return type(value) is int


def _dtype_name(spec: object) -> str:
    try:
        return str(np.dtype(spec))  # type: ignore[call-overload]
    except TypeError:
        return repr(spec)


def _read_meta(reader: _Reader) -> dict[str, Any]:
    if "__meta__.npy" not in reader.names:
        listed = sorted(n.removesuffix(".npy") for n in reader.names)[:8]
        raise ValueError(f"{reader.path!r} is not a laber checkpoint: no __meta__ entry (entries: {listed})")
    raw = reader.array("__meta__.npy")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        reader.malformed(f"__meta__ must be a 1-D uint8 array, got dtype {raw.dtype} and shape {raw.shape}")

    def no_constants(token: str) -> NoReturn:
        raise ValueError(f"{token} is not valid JSON")

    try:
        meta = json.loads(raw.tobytes().decode("utf-8"), parse_constant=no_constants)
    except UnicodeDecodeError as exc:
        reader.malformed(f"__meta__ is not UTF-8 text ({exc})")
    except ValueError as exc:
        reader.malformed(f"__meta__ is not valid JSON ({exc})")
    if not isinstance(meta, dict):
        reader.malformed(f"__meta__ must be a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{reader.path!r} is not a laber replay-buffer checkpoint: format={meta.get('format')!r} "
            f"(expected {FORMAT!r})"
        )
    if meta.get("version") != VERSION or not _int(meta.get("version")):
        raise ValueError(
            f"{reader.path!r}: checkpoint version {meta.get('version')!r} is not supported (this laber reads "
            f"version {VERSION})"
        )
    for key, kind in (("buffer", dict), ("stored", int), ("next", int), ("rng", dict), ("extra", dict)):
        if key not in meta:
            reader.malformed(f"__meta__ has no {key!r}")
        if type(meta[key]) is not kind:
            reader.malformed(f"__meta__[{key!r}] must be a JSON {kind.__name__}, got {meta[key]!r}"[:200])
    return meta


def _check_description(reader: _Reader, theirs: dict[str, Any], mine: Mapping[str, Any]) -> int:
    """The checkpoint's buffer description against this buffer's; returns the checkpoint's size."""
    size = theirs.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        reader.malformed(f"__meta__ gives size={size!r}, not a positive integer")
    fields = theirs.get("fields")
    if not isinstance(fields, dict):
        reader.malformed(f"__meta__ gives fields={fields!r}, not a JSON object"[:200])
    for name, spec in fields.items():
        if (
            not isinstance(spec, dict)
            or not isinstance(spec.get("shape"), list)
            or not all(_int(d) for d in spec["shape"])
            or not isinstance(spec.get("dtype"), str)
        ):
            reader.malformed(f"__meta__ describes field {name!r} as {spec!r}, not {{'shape': [...], 'dtype': str}}")

    def mismatch(what: str, detail: str) -> NoReturn:
        raise ValueError(f"checkpoint {reader.path!r}: {what} do not match this buffer: {detail}")

    my_fields: dict[str, Any] = mine["fields"]
    for name in my_fields:
        if name not in fields:
            hint = " (an internal field: was the file written by another buffer class?)" if name[:1] == "_" else ""
            mismatch("fields", f"this buffer has field {name!r}, the file does not{hint}")
    for name in fields:
        if name not in my_fields:
            hint = " (an internal field: was the file written by another buffer class?)" if name[:1] == "_" else ""
            mismatch("fields", f"the file has field {name!r}, this buffer does not{hint}")
    for name, spec in fields.items():
        here = my_fields[name]
        if spec["shape"] != here["shape"]:
            mismatch(
                "fields",
                f"field {name!r} has shape {tuple(spec['shape'])} in the file, {tuple(here['shape'])} in this buffer",
            )
        if spec["dtype"] != here["dtype"]:
            mismatch(
                "fields",
                f"field {name!r} has dtype {_dtype_name(spec['dtype'])} in the file, "
                f"{_dtype_name(here['dtype'])} in this buffer",
            )
    for key, what in (
        ("nstep", "N-step settings"),
        ("next_of", "next_of settings"),
        ("stack_compress", "stack_compress settings"),
    ):
        a, b = theirs.get(key), mine[key]
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            detail = "; ".join(
                f"{k} is {a.get(k)!r} in the file, {b.get(k)!r} in this buffer"
                for k in sorted(set(a) | set(b))
                if a.get(k) != b.get(k)
            )
        else:
            detail = f"{a!r} in the file, {b!r} in this buffer"
        mismatch(what, detail)
    if list(fields) != list(my_fields):
        mismatch(
            "fields",
            f"the same fields in another order (file: {list(fields)}, this buffer: {list(my_fields)}), so the "
            f"records differ: list env_dict in the file's order",
        )
    return size


def _check_members(reader: _Reader, state: BufferState) -> None:
    """Every member is one this buffer's checkpoint has; those it must have are there."""
    names = reader.names
    if len(set(names)) != len(names):
        reader.malformed("an entry appears twice")
    required = {"__meta__.npy", "rows.npy"}
    if state.next_of is not None:
        required |= {f"nextof/side/{n}.npy" for n in state.next_of.pairs} | {"nextof/free.npy", "nextof/pending.npy"}
    if state.stack is not None:
        required |= {f"stack/side/{n}.npy" for n in state.stack.fields} | {"stack/free.npy"}
    pending = {f"pending/{n}.npy" for n in state.nstep.names} if state.nstep is not None else set()
    for member in sorted(required - set(names)):
        reader.malformed(f"entry {member.removesuffix('.npy')!r} is missing")
    for member in names:
        if (
            member not in required
            and member not in pending
            and not (member.startswith("extra/") and member.endswith(".npy") and len(member) > 10)
        ):
            reader.malformed(f"unexpected entry {member!r}")
    present = pending & set(names)
    if present and present != pending:
        missing = sorted(m.removeprefix("pending/").removesuffix(".npy") for m in pending - present)
        reader.malformed(f"pending N-step transitions lack field(s) {missing}")


def _check_rng(reader: _Reader, state: BufferState, rng: dict[str, Any]) -> None:
    probe = copy.deepcopy(state.rng)
    try:
        probe.state = rng
    except (TypeError, ValueError, KeyError, IndexError, OverflowError) as exc:
        kind = type(probe).__name__
        reader.malformed(
            f"its rng state (bit_generator={rng.get('bit_generator')!r}) does not fit this buffer's {kind} "
            f"generator ({exc})"
        )


def _check_pending(reader: _Reader, state: BufferState) -> dict[str, np.ndarray]:
    nstep = state.nstep
    if nstep is None or f"pending/{nstep.names[0]}.npy" not in reader.names:
        return {}
    out = {n: reader.array(f"pending/{n}.npy") for n in nstep.names}
    count = out[nstep.names[0]].shape[0] if out[nstep.names[0]].ndim else -1
    for name, value in out.items():
        field = state.schema[name]
        if value.shape != (count, *field.shape) or value.dtype.kind not in "biuf":
            reader.malformed(
                f"pending/{name} must be numbers of shape ({count}, *{field.shape}), got dtype {value.dtype} and "
                f"shape {value.shape}"
            )
        if count > 0:  # the values must fit the field, as add() checks them (integers in range, no float overflow)
            try:
                state.schema.check_add({name: value}, (name,))
            except ValueError as exc:
                reader.malformed(f"pending N-step transition: {exc}")
    if count >= nstep.window:
        reader.malformed(f"{count} pending N-step transitions; at most {nstep.window - 1} can be pending")
    return out if count > 0 else {}


def _side_store(
    reader: _Reader, prefix: str, fields: Mapping[str, Field]
) -> tuple[dict[str, np.ndarray], int, np.ndarray]:
    """Side arrays (one per field, ``(capacity, *shape)``), their capacity and the free slots, checked."""
    side = {n: reader.array(f"{prefix}/side/{n}.npy") for n in fields}
    capacity = -1
    for name, f in fields.items():
        arr = side[name]
        if arr.dtype != f.dtype or arr.ndim != 1 + len(f.shape) or arr.shape[1:] != f.shape:
            reader.malformed(
                f"{prefix}/side/{name} must be {f.dtype} of shape (slots, *{f.shape}), got {arr.dtype} {arr.shape}"
            )
        if capacity >= 0 and arr.shape[0] != capacity:
            reader.malformed(f"{prefix}/side arrays hold different numbers of slots")
        capacity = arr.shape[0]
    free = reader.array(f"{prefix}/free.npy")
    if free.ndim != 1 or (free.size and free.dtype.kind not in "iu"):
        reader.malformed(f"{prefix}/free must be a 1-D integer array, got {free.dtype} {free.shape}")
    free = free.astype(np.int64)
    if free.size and (free.min() < 0 or free.max() >= capacity or np.unique(free).size != free.size):
        reader.malformed(f"{prefix}/free must hold distinct slots in [0, {capacity}), got {free.tolist()[:10]}")
    return side, capacity, free


def _check_slots(reader: _Reader, what: str, slots: np.ndarray, capacity: int, free: np.ndarray) -> None:
    """Slots used by rows: in range, each used once, none of them free."""
    if not slots.size:
        return
    if slots.max() >= capacity:
        reader.malformed(f"a row's {what} link is slot {int(slots.max())}, but the side store has {capacity} slots")
    if np.unique(slots).size != slots.size:
        reader.malformed(f"two rows' {what} links share one side-store slot")
    if np.isin(slots, free).any():
        reader.malformed(f"a row's {what} link is a slot that the side store lists as free")


@dataclass
class _Columns:
    """What the first pass over the rows collects: hidden link and field columns, and a few whole rows."""

    next_links: np.ndarray | None
    stack_links: np.ndarray | None
    hidden: dict[str, np.ndarray]
    context: np.ndarray | None  # records of the rows before the oldest kept one (stack_compress), oldest first


def _first_pass(
    reader: _Reader, state: BufferState, record: np.dtype[Any], stored: int, context_positions: np.ndarray | None
) -> _Columns:
    """Stream every row once (checking the bytes and CRC) and collect the columns the checks need."""
    itemsize = record.itemsize
    next_links = np.empty(stored, np.int64) if state.next_of is not None else None
    stack_links = np.empty(stored, np.int64) if state.stack is not None else None
    hidden = {n: np.empty((stored, *state.schema[n].shape), state.schema[n].dtype) for n in state.hidden}
    context = None if context_positions is None else np.empty(context_positions.size, record)
    per_chunk = max(1, _CHUNK_BYTES // itemsize)
    with reader.open_rows(stored * itemsize) as fp:
        for start in range(0, stored, per_chunk):
            count = min(per_chunk, stored - start)
            chunk = np.frombuffer(reader.read_exact(fp, count * itemsize), dtype=record)
            if next_links is not None:
                next_links[start : start + count] = chunk[LINK]
            if stack_links is not None:
                stack_links[start : start + count] = chunk[STACK_LINK]
            for name, column in hidden.items():
                column[start : start + count] = chunk[name]
            if context is not None and context_positions is not None:
                here = (context_positions >= start) & (context_positions < start + count)
                context[here] = chunk[context_positions[here] - start]
        reader.expect_end(fp)
    return _Columns(next_links, stack_links, hidden, context)


@dataclass
class _Plan:
    """Everything ``load`` writes into the buffer, checked."""

    stored: int
    next: int
    file_rows: int  # rows in the file
    segments: list[tuple[int, int, int]]  # (first row in the file, rows, first storage position), in file order
    next_links: np.ndarray | None  # the new link column of storage positions 0 .. stored - 1
    stack_links: np.ndarray | None
    next_of_state: dict[str, np.ndarray] | None
    stack_state: dict[str, np.ndarray] | None
    pending: dict[str, np.ndarray]
    rng: dict[str, Any]
    extra: dict[str, Any]


def _segments(old_at_new: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of consecutive rows: storage positions ``q .. q + n - 1`` take file rows ``p .. p + n - 1``."""
    if not old_at_new.size:
        return []
    breaks = np.flatnonzero(np.diff(old_at_new) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [old_at_new.size]])
    runs = [(int(old_at_new[a]), int(b - a), int(a)) for a, b in zip(starts, stops, strict=True)]
    return sorted(runs)


def _compact(
    links: np.ndarray,
    side: Mapping[str, np.ndarray],
    shapes: Mapping[str, tuple[tuple[int, ...], np.dtype[Any]]],
    minimum: int,
    extra_slots: int = 0,
) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Renumber the slots that ``links`` (new rows, in order) use as ``0 .. u - 1``.

    Returns the new links, fresh side arrays (capacity ``max(minimum, u + extra_slots)``, slots ``0 .. u - 1``
    filled), the old slot of each new one, and the free list for slots ``u + extra_slots ..`` (allocated first).
    """
    anchor = links >= 0
    old_slots = links[anchor]
    used = old_slots.size
    new_links = links.copy()
    new_links[anchor] = np.arange(used, dtype=np.int64)
    capacity = max(minimum, used + extra_slots, 1)
    new_side = {}
    for name, (shape, dtype) in shapes.items():
        arr = np.zeros((capacity, *shape), dtype)
        arr[:used] = side[name][old_slots]
        new_side[name] = arr
    free = np.arange(capacity - 1, used + extra_slots - 1, -1, dtype=np.int64)
    return new_links, new_side, old_slots, free


@dataclass
class _Ring:
    """Where the checkpoint's rows come from and go to."""

    n: int  # rows in the file
    size: int  # the file's ring size
    start: int  # file row of the oldest row
    same: bool  # the buffer has the file's size: positions are kept
    k: int  # rows kept: the newest ``k``
    old_at_new: np.ndarray  # file row of each kept row, by storage position 0 .. k - 1
    new_of_old: np.ndarray  # storage position of each file row (-1: dropped)
    age: np.ndarray  # age rank of each file row (0: the oldest)

    @classmethod
    def of(cls, n: int, size: int, next_index: int, new_size: int) -> _Ring:
        same = new_size == size
        k = n if same else min(n, new_size)
        start = next_index if n == size else 0
        by_age = (start + np.arange(n, dtype=np.int64)) % max(n, 1)  # file rows, oldest first
        old_at_new = np.arange(n, dtype=np.int64) if same else by_age[n - k :]
        age = np.empty(n, np.int64)
        age[by_age] = np.arange(n, dtype=np.int64)
        new_of_old = np.full(n, -1, np.int64)
        new_of_old[old_at_new] = np.arange(k, dtype=np.int64)
        return cls(n, size, start, same, k, old_at_new, new_of_old, age)

    def context(self, depth: int) -> np.ndarray | None:
        """File rows whose frames the oldest kept row's stack needs when older rows are dropped (oldest first)."""
        if not 0 < self.k < self.n:
            return None
        oldest = self.n - self.k
        ages = np.arange(max(0, oldest - (depth - 1)), oldest + 1)
        rows: np.ndarray = (self.start + ages) % self.n
        return rows


def _plan_next_of(
    reader: _Reader, state: BufferState, ring: _Ring, links: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Check the ``next_of`` links, side store and pending links; the kept rows' new links and the new state.

    A link is ``-steps`` to a newer stored row (kept as the same distance in age) or a used slot (renumbered).
    """
    next_of = state.next_of
    if next_of is None:
        raise RuntimeError("internal error: no next_of links")
    max_steps = state.max_steps
    side, capacity, free = _side_store(reader, "nextof", next_of.pairs)
    linked = links < 0
    steps = -links[linked]
    rows_linked = np.flatnonzero(linked)
    if steps.size and steps.max() > max_steps:
        bad = int(rows_linked[int(np.argmax(steps))])
        reader.malformed(f"row {bad}'s next_of link {int(links[bad])} reaches beyond {max_steps} step(s)")
    target = (rows_linked + steps) % ring.size
    ok = target < ring.n
    ok[ok] = ring.age[target[ok]] > ring.age[rows_linked[ok]]
    if not ok.all():
        bad = int(rows_linked[int(np.flatnonzero(~ok)[0])])
        reader.malformed(f"row {bad}'s next_of link {int(links[bad])} does not reach a newer stored row")
    _check_slots(reader, "next_of", links[~linked], capacity, free)
    pend = reader.array("nextof/pending.npy")
    if pend.ndim != 2 or pend.shape[1] != 3 or (pend.size and pend.dtype.kind not in "iu"):
        reader.malformed(f"nextof/pending must be an integer array of shape (links, 3), got {pend.dtype} {pend.shape}")
    src, slot, st = pend.astype(np.int64).T
    if src.size and (
        src.min() < 0
        or src.max() >= ring.n
        or np.unique(src).size != src.size
        or st.min() < 1
        or st.max() > max_steps
        or not np.array_equal(links[src], slot)
    ):
        reader.malformed(f"nextof/pending does not match the rows' links: {pend.tolist()[:5]}")
    kept = links[ring.old_at_new].copy()
    kept_linked = kept < 0
    rows = ring.old_at_new[kept_linked]
    kept[kept_linked] = -(ring.age[(rows - links[rows]) % ring.size] - ring.age[rows])
    shapes = {name: (f.shape, f.dtype) for name, f in next_of.pairs.items()}
    new_links, new_side, old_slots, new_free = _compact(kept, side, shapes, next_of.initial_capacity)
    renumber = np.full(max(capacity, 1), -1, np.int64)
    renumber[old_slots] = np.arange(old_slots.size, dtype=np.int64)
    keep = ring.new_of_old[src] >= 0  # pending links of dropped rows go with them
    out = {f"side/{name}": arr for name, arr in new_side.items()}
    out["free"] = new_free
    out["pending"] = np.stack([ring.new_of_old[src[keep]], renumber[slot[keep]], st[keep]], axis=1).astype(np.int64)
    return new_links, out


def _plan_stack(
    reader: _Reader, state: BufferState, ring: _Ring, links: np.ndarray, context: np.ndarray | None
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Check the ``stack_compress`` links and side store; the kept rows' new links and the new state.

    A link is -1 (the row continues the one before) or a used slot (an anchor; renumbered). The oldest row must
    be an anchor; when older rows are dropped, the oldest kept row becomes one (its stack rebuilt from
    ``context``, the records of the rows before it).
    """
    stack = state.stack
    if stack is None:
        raise RuntimeError("internal error: no stack_compress links")
    shapes = {name: ((*f.shape[:-1], stack.depth - 1), f.dtype) for name, f in stack.fields.items()}
    side, capacity, free = _side_store(reader, "stack", {name: Field(name, s, d) for name, (s, d) in shapes.items()})
    if links.size and links.min() < -1:
        bad = int(np.argmin(links))
        reader.malformed(f"row {bad}'s stack_compress link is {int(links[bad])} (must be -1 or a slot)")
    _check_slots(reader, "stack_compress", links[links >= 0], capacity, free)
    if ring.n and links[ring.start] < 0:
        reader.malformed(f"the oldest row ({ring.start}) is not a stack_compress anchor, so its older frames are lost")
    kept = links[ring.old_at_new].copy()
    anchor = context is not None and kept[0] < 0
    new_links, new_side, _, new_free = _compact(kept, side, shapes, stack.initial_capacity, int(anchor))
    if anchor and context is not None:
        # the few rows of the context as a ring of their own, with a side store of just the slots they use
        context_links = context[STACK_LINK].astype(np.int64)
        anchors = context_links >= 0
        scratch = StackLinks(context.size, stack.fields)
        scratch.restore(
            {
                **{f"side/{name}": side[name][context_links[anchors]] for name in stack.fields},
                "free": np.empty(0, np.int64),
            }
        )
        context_links[anchors] = np.arange(np.count_nonzero(anchors), dtype=np.int64)
        full = scratch.reconstruct(
            np.array([context.size - 1], dtype=np.int64),
            context_links,
            {name: context[name] for name in stack.fields},
        )
        slot = int(np.count_nonzero(kept >= 0))
        for name in stack.fields:
            new_side[name][slot] = full[name][0, ..., :-1]
        new_links[0] = slot
    out = {f"side/{name}": arr for name, arr in new_side.items()}
    out["free"] = new_free
    return new_links, out


def _plan(reader: _Reader, buffer: Checkpointable, state: BufferState) -> _Plan:
    """Read and check the whole checkpoint (nothing in ``buffer`` changes); what to write, in ``_Plan``."""
    record, _ = _host(state)
    meta = _read_meta(reader)
    old_size = _check_description(reader, meta["buffer"], state.description)
    _check_members(reader, state)
    n, old_next = meta["stored"], meta["next"]
    if not 0 <= n <= old_size:
        reader.malformed(f"__meta__ gives stored={n}, outside [0, size={old_size}]")
    if not 0 <= old_next < old_size or (n < old_size and old_next != n):
        reader.malformed(
            f"__meta__ gives next={old_next} with stored={n} of size={old_size} (a ring that is not full has "
            f"next == stored)"
        )
    _check_rng(reader, state, meta["rng"])
    pending = _check_pending(reader, state)
    ring = _Ring.of(n, old_size, old_next, state.size)
    context_rows = None if state.stack is None else ring.context(state.stack.depth)
    cols = _first_pass(reader, state, record, n, context_rows)
    next_links, next_of_state = (
        (None, None) if cols.next_links is None else _plan_next_of(reader, state, ring, cols.next_links)
    )
    stack_links, stack_state = (
        (None, None) if cols.stack_links is None else _plan_stack(reader, state, ring, cols.stack_links, cols.context)
    )
    extra: dict[str, Any] = dict(meta["extra"])
    for member in reader.names:
        if member.startswith("extra/"):
            key = member.removeprefix("extra/").removesuffix(".npy")
            if key in extra:
                reader.malformed(f"extra state {key!r} is given twice")
            extra[key] = reader.array(member)
    hidden_pending = {name: pending[name] for name in state.hidden if name in pending}
    try:
        buffer.check_checkpoint_extra(extra, cols.hidden, hidden_pending)  # priorities of every row, the running max
    except (ValueError, TypeError) as exc:
        reader.malformed(str(exc))
    return _Plan(
        stored=ring.k,
        next=old_next if ring.same else ring.k % state.size,
        file_rows=n,
        segments=_segments(ring.old_at_new),
        next_links=next_links,
        stack_links=stack_links,
        next_of_state=next_of_state,
        stack_state=stack_state,
        pending=pending,
        rng=meta["rng"],
        extra=extra,
    )


def _second_pass(
    reader: _Reader, memory: memoryview, itemsize: int, stored: int, segments: list[tuple[int, int, int]]
) -> None:
    """Read the kept rows of the file straight into the record memory ``memory`` (the bytes of the buffer's
    whole record array), skipping the others (and check the CRC again)."""
    with reader.open_rows(stored * itemsize) as fp:
        at = 0
        for first, count, position in [*segments, (stored, 0, 0)]:
            for _ in reader.read_chunks(fp, (first - at) * itemsize):  # rows that are not kept: dropped
                pass
            reader.read_into(fp, memory[position * itemsize : (position + count) * itemsize])
            at = first + count
        reader.expect_end(fp)


def _apply(reader: _Reader, buffer: Checkpointable, state: BufferState, plan: _Plan) -> None:
    """Write the checked plan into ``buffer`` (``restore_checkpoint``; the rows are read from the file into its
    record memory as it asks for them). Should reading fail now (an I/O error, or the file changed in place
    since the checks), the buffer is left empty rather than half-loaded."""
    record, _ = _host(state)

    def write_rows(memory: memoryview) -> None:
        _second_pass(reader, memory, record.itemsize, plan.file_rows, plan.segments)

    buffer.restore_checkpoint(
        BufferRestore(
            stored=plan.stored,
            next=plan.next,
            write_rows=write_rows,
            next_links=plan.next_links,
            stack_links=plan.stack_links,
            next_of=plan.next_of_state,
            stack=plan.stack_state,
            pending=plan.pending,
            rng=plan.rng,
            extra=plan.extra,
        )
    )


def load(buffer: Checkpointable, path: str | os.PathLike[str]) -> None:
    """Restore ``buffer`` from ``path``: the whole file is checked first (on error: ``ValueError`` naming the path,
    buffer unchanged); a buffer of another size keeps the newest rows (see the module docstring).

    The caller holds the buffer's lock for the whole call (``ReplayBuffer.load_checkpoint`` does): the checks are
    made against the state the restore then replaces."""
    state = buffer.checkpoint_state()
    _host(state)
    target = _as_path(path)
    name = str(path)
    with _open_archive(target, name) as zf:
        reader = _Reader(zf, name)
        plan = _plan(reader, buffer, state)
        _apply(reader, buffer, state, plan)
