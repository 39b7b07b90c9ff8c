r"""Transitions files: cpprb's ``save_transitions`` format, read and written, and laber checkpoints read as rows.

What the buffers call (``laber.buffers``; this module changes no buffer, it reads and writes plain arrays):

* ``ReplayBuffer.save_transitions(file, *, safe=True)``::

      write_transitions(file, rows, safe=safe, nstep=self.is_Nstep(),
                        next_of=None if self.is_Nstep() else <next_of names or None>,
                        stack_compress=<stack_compress names or None>)

  ``rows``: every public field of the stored rows, oldest first (``get_all_transitions()`` rolled by the next
  index once the ring is full), ``discount`` included with N-step (cpprb ignores data keys its buffer lacks).
  Writes cpprb's format version 1 (the only one: cpprb 10.1.0 to 11.0.0); a path lacking ``.npz`` gets it, as
  with cpprb; returns the path written.
* ``ReplayBuffer.load_transitions(file)`` *adds* the file's rows (cpprb's semantics)::

      data = read_transitions(file)      # cpprb file (safe or unsafe) or laber checkpoint; opens `file` as given

  1. ``data.nstep != self.is_Nstep()``: ``ValueError`` (cpprb refuses this mismatch too).
  2. Every input field ``add`` needs must be in ``data.fields`` (``ValueError`` naming the missing ones; cpprb's
     N-step ``next_of`` files have no ``next_*`` at all); fields the buffer lacks are ignored, as cpprb does.
  3. Check all rows as ``add`` would, then write them in file order as *finished* rows: not through the N-step
     window (an N-step file's rows are N-step rows already; transitions pending in this buffer's window stay
     pending), only the last ``size`` rows, in chunks of at most ``size`` (cpprb cannot add more than its size at
     once and fails on a smaller buffer; laber keeps the newest).
  4. N-step ``discount``: ``data.fields["discount"]`` when present (laber's files), else ``gamma**n`` for every
     row (cpprb stores none; rows cut short by an episode end cannot be recognised).
  5. ``PrioritizedReplayBuffer``: ``data.priorities`` when present (laber checkpoints), else the running
     maximum, as cpprb gives loaded rows. ``data.pending`` (a checkpoint's open N-step window) is not added.

Nothing here changes a buffer: :func:`read_transitions` returns a :class:`TransitionsFile` (plain arrays and
metadata), :func:`write_transitions` takes plain arrays.

The cpprb transitions format (version 1)
----------------------------------------

An ``.npz`` archive (``numpy.savez_compressed``: a zip of deflated ``.npy`` members) with six members:

* ``safe``: 0-d bool; ``version``: 0-d int64, always ``1``; ``Nstep``: 0-d bool, whether the buffer computed
  N-step returns;
* ``data``: a 0-d *object* array (its ``.npy`` payload is a pickle) holding a ``dict`` ``name -> ndarray``;
* ``cache``: a 0-d object array holding ``None`` (safe files) or a ``dict`` (unsafe files, below);
* ``next_of``: a 0-d object array holding ``None``, or (unsafe files of ``next_of`` buffers) a 1-d unicode
  array of the ``next_of`` names.

A **safe** file (``safe=True``, and every file of a buffer with neither ``next_of`` nor ``stack_compress``,
whatever ``safe`` says) stores ``data = get_all_transitions()``: every field, ``next_*`` fields included, shape
``(N, *shape)`` (``(N, 1)`` for scalar fields), in the buffer's storage index order ``0 .. N - 1``. An
**unsafe** file (``safe=False`` with ``next_of`` or ``stack_compress``) stores the raw storage instead, which is
"aggressive compression" only for ``next_of``:

* ``data`` holds the stored fields at indexes ``0 .. N - 1`` (all ``size`` rows once the ring is full), without
  the ``next_<x>`` fields of ``next_of`` names; ``stack_compress`` fields are written as full stacks (numpy
  materialises cpprb's strided view when it pickles it), so they take no less room than in a safe file;
* ``cache`` maps a row index ``i`` (an ``int``) to a ``dict``: ``"next_<x>"`` -> row ``i``'s next value
  for the ``next_of`` name ``x``, where it is not the following row's ``x`` (episode ends, the newest row), and
  ``<name>`` -> row ``i``'s true stack for a ``stack_compress`` field, where the strided storage no longer
  holds it (the last rows of an episode). Keys may be ``numpy.str_``.

The transitions are rebuilt as cpprb's ``get_all_transitions`` returns them: every field from ``data``,
``cache`` entries overriding their rows, and ``next_<x>[i] = cache[i]["next_<x>"]`` if cached else
``x[(i + 1) % N]``, the ``next_*`` fields last. What cpprb stores, checked against cpprb 10.7.2 and 11.0.0 (and
the embedded sources of 10.1.0 and 10.6.4, which save and load exactly the same way):

* only format version 1 exists (cpprb 10.1.0 added it; 11.0.0 reads version 1 only and refuses others);
* rows are in storage index order: oldest first unless the saving buffer had wrapped around, and the file does
  not say where its next index was, so that order cannot be recovered (``TransitionsFile.order == "storage"``);
* N-step buffers store their finished rows (discounted returns over each window cut at the episode's end, with
  cpprb's own quirks: the "next" fields of windows cut short by ``on_episode_end`` hold its scratch buffer's
  fill value ``1``, and ``done`` is cpprb's running sum, not always the window's); the transitions still waiting
  in the N-step window are *not* saved, and no bootstrap discount is stored; cpprb disables ``next_of`` for
  N-step buffers, so their files have no ``next_*`` field of a ``next_of`` name at all;
* ``PrioritizedReplayBuffer`` saves no priorities; cpprb's ``load_transitions`` gives the loaded rows the running
  maximum priority;
* *both* modes pickle: ``data`` and ``cache`` are pickled objects in every cpprb file ("unsafe" means the raw
  layout above, which may change with cpprb's internals, not "pickled").
* cpprb's loader adds the rows in file order; for an unsafe file it adds the rows between cached rows as
  batches and ends an episode after each cached row, so a ``stack_compress`` buffer keeps its stacks; a safe
  file goes in as one batch, which corrupts the stacks at episode boundaries of a cpprb ``stack_compress``
  buffer (cpprb's behaviour, also for its own files). :func:`write_transitions` with ``safe=False`` writes
  ``cache`` entries at those boundaries, so cpprb loads laber's unsafe files as it loads its own.

No arbitrary unpickling: every member is read with ``allow_pickle=False`` except the object members, whose
pickles are decoded by a restricted unpickler that resolves only numpy's array and dtype reconstruction
(``numpy[._]core.multiarray._reconstruct`` and ``scalar``, ``numpy.ndarray``, ``numpy.dtype``, and
``numpy.memmap`` read as a plain array); any other global or a persistent id is a ``ValueError`` naming the file
and the global, as is an object array inside ``data`` or ``cache``. Nothing from the file is imported or called,
so a cpprb file is read without the code-execution risk of cpprb's own ``np.load(..., allow_pickle=True)``.

laber checkpoints (``laber.checkpoint``, ``save_checkpoint``) are recognised by their ``__meta__`` member and
read through laber's own checked loader: the stored rows come back oldest first (``order == "oldest-first"``),
with ``discount`` for N-step buffers, the priorities ``p`` of a ``PrioritizedReplayBuffer`` checkpoint in
``priorities``, and the transitions still pending in the N-step window in ``pending`` (not part of
``fields``).
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn

import numpy as np

__all__ = ["CPPRB_FORMAT_VERSION", "TransitionsFile", "read_transitions", "write_transitions"]

CPPRB_FORMAT_VERSION = 1
"""The only transitions format version cpprb has (10.1.0 to 11.0.0 write and read version 1)."""

_CPPRB_REQUIRED = ("safe.npy", "version.npy", "data.npy", "Nstep.npy")
_LABER_META = "__meta__.npy"
_FORMAT_CPPRB = "cpprb"
_FORMAT_LABER = "laber-checkpoint"
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


@dataclass(frozen=True)
class TransitionsFile:
    """What :func:`read_transitions` found in a file: plain arrays and metadata, nothing tied to a buffer.

    Attributes:
        path: the file read (``repr`` of a file object when one was given).
        format: ``"cpprb"`` (a cpprb transitions file) or ``"laber-checkpoint"``.
        version: the file's format version (cpprb: 1; laber checkpoint: its version).
        fields: ``name -> array (rows, *shape)``, fresh arrays, in the file's row order (see ``order``), as
            cpprb's ``get_all_transitions`` would return them (``next_*`` fields rebuilt, stacks restored). For
            a laber N-step checkpoint, ``discount`` (``gamma**k`` per row) is among them.
        order: ``"storage"`` (cpprb: the saving buffer's index order, oldest first unless it had wrapped
            around, which the file does not record) or ``"oldest-first"`` (laber checkpoints).
        nstep: the rows are finished N-step rows (cpprb's ``Nstep`` flag; a laber checkpoint with ``Nstep``).
        safe: cpprb's ``safe`` flag (``None`` for laber checkpoints).
        next_of: the ``next_of`` names the file records (cpprb: unsafe files only; laber: the buffer's).
        stack_compress: the ``stack_compress`` fields (laber checkpoints; cpprb files do not record them).
        priorities: float64 ``(rows,)``, the priorities ``p`` of a laber ``PrioritizedReplayBuffer``
            checkpoint, row for row; ``None`` otherwise (cpprb never saves priorities).
        nstep_config: laber checkpoints: ``{"size", "gamma", "rew", "next"}`` of an N-step buffer, else None.
        pending: laber checkpoints: the raw transitions still waiting in the N-step window (public fields,
            oldest first); empty otherwise. They are not rows yet, so they are not in ``fields``.
    """

    path: str
    format: str
    version: int
    fields: dict[str, np.ndarray]
    order: str
    nstep: bool
    safe: bool | None = None
    next_of: tuple[str, ...] = ()
    stack_compress: tuple[str, ...] = ()
    priorities: np.ndarray | None = None
    nstep_config: dict[str, Any] | None = None
    pending: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """Number of rows (transitions) in ``fields``."""
        for value in self.fields.values():
            return int(value.shape[0])
        return 0


# ============================================================================================ restricted pickle
class _Refused(Exception):
    """A pickle asked for something the restricted unpickler does not build."""


def _reconstruct(subtype: object, shape: object, typecode: object) -> np.ndarray:
    """numpy's ``_reconstruct`` for plain arrays only: an empty array that the pickle's BUILD then fills."""
    if subtype is not np.ndarray:
        raise _Refused(f"an array of type {subtype!r}")
    if not isinstance(typecode, (bytes, str)):
        raise _Refused(f"an array typecode {typecode!r}")
    new: Any = np.ndarray.__new__
    return new(np.ndarray, shape, typecode)  # type: ignore[no-any-return]


def _scalar(dtype: object, data: object = None) -> object:
    """numpy's ``scalar`` (pickled numpy scalars such as cpprb's ``numpy.str_`` keys), for non-object dtypes."""
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise _Refused(f"a numpy scalar of dtype {dtype!r}")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _Refused(f"a numpy scalar of {dtype} from {type(data).__name__} data")
    return np.frombuffer(data, dtype=dtype)[0]


_ALLOWED_GLOBALS: dict[tuple[str, str], object] = {
    **{(m, "_reconstruct"): _reconstruct for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(m, "scalar"): _scalar for m in ("numpy.core.multiarray", "numpy._core.multiarray")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # a buffer built with mmap_prefix pickles np.memmap slices: read as plain arrays (the data is in the pickle)
    **{(m, "memmap"): np.ndarray for m in ("numpy", "numpy.core.memmap", "numpy._core.memmap")},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds numpy arrays, dtypes, numpy scalars and Python containers; imports and calls nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _Refused(f"the global {module}.{name}") from None

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id")


# ================================================================================================ reading
class _Archive:
    """One open ``.npz``, with errors that name the file."""

    def __init__(self, zf: zipfile.ZipFile, name: str) -> None:
        self.zf = zf
        self.name = name
        self.members = [info.filename for info in zf.infolist()]
        self.kind = "cpprb transitions file"

    def malformed(self, what: str) -> NoReturn:
        raise ValueError(f"{self.name!r} is not a valid {self.kind}: {what}")

    def array(self, member: str) -> np.ndarray:
        """A member as an array: ``allow_pickle=False``; object arrays through the restricted unpickler."""
        label = member.removesuffix(".npy")
        try:
            with self.zf.open(member) as fp:
                version = np.lib.format.read_magic(fp)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
                elif version in ((2, 0), (3, 0)):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
                else:
                    self.malformed(f"entry {label!r} has .npy format version {version}")
                if dtype.hasobject:
                    obj = _RestrictedUnpickler(fp).load()
                    if not isinstance(obj, np.ndarray) or obj.shape != shape or obj.dtype != dtype:
                        self.malformed(f"entry {label!r} does not hold the object array its header announces")
                    if fp.read(1):
                        self.malformed(f"entry {label!r} has trailing bytes after its pickle")
                    return obj
            with self.zf.open(member) as fp:
                arr: np.ndarray = np.lib.format.read_array(fp, allow_pickle=False)
                if fp.read(1):
                    self.malformed(f"entry {label!r} has trailing bytes after its array data")
                return arr
        except _Refused as exc:
            raise ValueError(
                f"{self.name!r}: entry {label!r} holds a pickle that asks for {exc}, which is neither a numpy "
                f"array nor a plain container; laber does not unpickle arbitrary objects (cpprb transitions "
                f"files pickle only dicts of numpy arrays)"
            ) from None
        except OSError:
            raise
        except ValueError as exc:
            if str(exc).startswith(repr(self.name)):
                raise
            self.malformed(f"entry {label!r} cannot be read ({exc})")
        except Exception as exc:  # anything a corrupt member makes numpy, zipfile, zlib or pickle raise
            self.malformed(f"entry {label!r} cannot be read ({type(exc).__name__}: {exc})")


def _name_of(source: object) -> str:
    if isinstance(source, (str, os.PathLike)):
        return str(os.fspath(source))
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else repr(source)


def _expected() -> str:
    return (
        "expected a cpprb transitions file (an .npz with entries safe, version, data, Nstep, cache, next_of, as "
        "save_transitions writes) or a laber checkpoint (an .npz with entries __meta__, rows, ..., as "
        "save_checkpoint writes)"
    )


def _open(source: object, name: str) -> zipfile.ZipFile:
    """The archive at ``source`` (a path or a binary file object), or one clear ValueError."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if not os.path.exists(path) and os.path.isfile(f"{path}.npz"):
            raise FileNotFoundError(
                f"no such file: {path!r} (there is {path + '.npz'!r}: save_transitions appends .npz to a name "
                f"that lacks it, as numpy and cpprb do, but load_transitions opens the name it is given)"
            )
        with open(path, "rb") as fh:
            head = fh.read(6)
        opened: str | IO[bytes] = path
    elif callable(getattr(source, "read", None)) and callable(getattr(source, "seek", None)):
        fobj: IO[bytes] = source  # type: ignore[assignment]
        start = fobj.tell()
        head = fobj.read(6)
        fobj.seek(start)
        if not isinstance(head, bytes):
            raise TypeError(f"file must be opened in binary mode, got {source!r}")
        opened = fobj
    else:
        raise TypeError(f"file must be a path (str or os.PathLike) or a binary file object, got file={source!r}")
    if head == b"\x93NUMPY":
        raise ValueError(f"{name!r} is a .npy file (a single numpy array), not an .npz archive; {_expected()}")
    try:
        return zipfile.ZipFile(opened)
    except OSError:
        raise
    except Exception as exc:  # BadZipFile, NotImplementedError (a "zip version"), struct and decoding errors
        raise ValueError(f"{name!r} is not an .npz (zip) archive ({exc}); {_expected()}") from None


def read_transitions(file: str | os.PathLike[str] | IO[bytes]) -> TransitionsFile:
    """Read the transitions of a cpprb transitions file or of a laber checkpoint (see the module docstring).

    ``file`` is a path, opened exactly as given (as cpprb's ``load_transitions`` does: ``"name"`` does not find
    ``"name.npz"``), or a binary file object. Returns a :class:`TransitionsFile`; changes nothing anywhere.

    Raises:
        FileNotFoundError: no such file (the message points at ``file + ".npz"`` when that exists).
        ValueError: the file is neither format, is malformed, holds a pickle of anything but numpy arrays and
            plain containers, or has a cpprb format version other than 1; the message names the file.
    """
    name = _name_of(file)
    zf = _open(file, name)
    with zf:
        archive = _Archive(zf, name)
        members = set(archive.members)
        if _LABER_META in members:
            return _read_laber(file, name, archive)
        if all(m in members for m in _CPPRB_REQUIRED):
            return _read_cpprb(archive)
        listed = sorted(m.removesuffix(".npy") for m in archive.members)
        shown = listed[:10] + (["..."] if len(listed) > 10 else [])
        raise ValueError(f"{name!r} is an .npz archive with entries {shown}, which is neither format; {_expected()}")


def _flag(archive: _Archive, member: str) -> bool:
    value = archive.array(f"{member}.npy")
    if value.shape != () or value.dtype.kind not in "biu":
        archive.malformed(f"entry {member!r} must be a 0-d bool, got dtype {value.dtype} and shape {value.shape}")
    return bool(value)


def _object(archive: _Archive, member: str) -> object:
    value = archive.array(f"{member}.npy")
    if value.shape != () or value.dtype != np.dtype(object):
        archive.malformed(
            f"entry {member!r} must be a 0-d object array, got dtype {value.dtype} and shape {value.shape}"
        )
    return value[()]


def _key(value: object) -> str | None:
    """A dict key as cpprb writes them: ``str`` or ``numpy.str_`` (None for anything else)."""
    return str(value) if isinstance(value, str) else None


def _read_cpprb(archive: _Archive) -> TransitionsFile:
    version = archive.array("version.npy")
    if version.shape != () or version.dtype.kind not in "iu":
        archive.malformed(f"entry 'version' must be a 0-d integer, got dtype {version.dtype} and shape {version.shape}")
    if int(version) != CPPRB_FORMAT_VERSION:
        raise ValueError(
            f"{archive.name!r}: cpprb transitions format version {int(version)} is not supported (cpprb 10.1.0 to "
            f"11.0.0 write and read version {CPPRB_FORMAT_VERSION} only)"
        )
    safe = _flag(archive, "safe")
    nstep = _flag(archive, "Nstep")
    data = _object(archive, "data")
    if not isinstance(data, dict):
        archive.malformed(f"entry 'data' must hold a dict of arrays, got {type(data).__name__}")
    fields: dict[str, np.ndarray] = {}
    rows = -1
    for key, value in data.items():
        name = _key(key)
        if not name:
            archive.malformed(f"entry 'data' has a key {key!r} that is not a field name")
        if name in fields:
            archive.malformed(f"entry 'data' names field {name!r} twice")
        if not isinstance(value, np.ndarray) or value.dtype.hasobject or value.ndim < 1:
            what = f"{value.dtype} array of shape {value.shape}" if isinstance(value, np.ndarray) else type(value)
            archive.malformed(f"field {name!r} must be a numeric array (rows, *shape), got {what}")
        if rows >= 0 and value.shape[0] != rows:
            archive.malformed(f"fields hold different numbers of rows ({rows} and {value.shape[0]} for {name!r})")
        rows = value.shape[0]
        fields[name] = value
    if not fields:
        archive.malformed("entry 'data' holds no field")
    next_of: tuple[str, ...] = ()
    if not safe:
        if "cache.npy" not in archive.members or "next_of.npy" not in archive.members:
            archive.malformed("an unsafe file (safe=False) needs the entries 'cache' and 'next_of'")
        next_of = _next_of_names(archive, fields)
        fields = _rebuild(archive, fields, next_of, _object(archive, "cache"), rows)
    return TransitionsFile(
        path=archive.name,
        format=_FORMAT_CPPRB,
        version=CPPRB_FORMAT_VERSION,
        fields=fields,
        order="storage",
        nstep=nstep,
        safe=safe,
        next_of=next_of,
    )


def _next_of_names(archive: _Archive, fields: Mapping[str, np.ndarray]) -> tuple[str, ...]:
    raw = archive.array("next_of.npy")
    if raw.dtype.hasobject:
        held: object = raw[()] if raw.shape == () else raw
        if held is not None:
            archive.malformed(f"entry 'next_of' must hold None or field names, got {raw!r}"[:200])
        return ()
    if raw.dtype.kind != "U" or raw.ndim > 1:
        archive.malformed(f"entry 'next_of' must be None or field names, got dtype {raw.dtype} and shape {raw.shape}")
    names = tuple(str(n) for n in np.atleast_1d(raw))
    for x in names:
        if x not in fields:
            archive.malformed(f"entry 'next_of' names {x!r}, which is not a field of 'data'")
        if f"next_{x}" in fields:
            archive.malformed(f"an unsafe file of next_of={x!r} must not store 'next_{x}' in 'data'")
    if len(set(names)) != len(names):
        archive.malformed(f"entry 'next_of' names a field twice: {list(names)}")
    return names


def _rebuild(
    archive: _Archive, data: dict[str, np.ndarray], next_of: tuple[str, ...], cache: object, rows: int
) -> dict[str, np.ndarray]:
    """An unsafe file's transitions as cpprb's ``get_all_transitions`` returns them (module docstring)."""
    if not isinstance(cache, dict):
        archive.malformed(f"entry 'cache' of an unsafe file must hold a dict, got {type(cache).__name__}")
    out = dict(data)
    nexts = {f"next_{x}": np.roll(data[x], -1, axis=0) for x in next_of}
    for index, entry in cache.items():
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            archive.malformed(f"entry 'cache' has a key {index!r} that is not a row index")
        i = int(index)
        if not 0 <= i < rows:
            archive.malformed(f"entry 'cache' has row {i}, outside the file's {rows} rows")
        if not isinstance(entry, dict):
            archive.malformed(f"entry 'cache' row {i} must hold a dict, got {type(entry).__name__}")
        for key, value in entry.items():
            name = _key(key)
            if name is not None and name in nexts:
                target = nexts[name]
            elif name is not None and name in data:
                if out[name] is data[name]:
                    out[name] = data[name].copy()
                target = out[name]
            else:
                archive.malformed(f"entry 'cache' row {i} has {key!r}, neither a field nor a next_of field")
            if not isinstance(value, np.ndarray) or value.dtype.hasobject or value.size != target[0].size:
                what = f"{value.dtype} {value.shape}" if isinstance(value, np.ndarray) else type(value).__name__
                archive.malformed(
                    f"entry 'cache' row {i} {name!r} must be an array of shape {target.shape[1:]}, got {what}"
                )
            if not np.can_cast(value.dtype, target.dtype, casting="same_kind"):
                archive.malformed(f"entry 'cache' row {i} {name!r} has dtype {value.dtype}, the field {target.dtype}")
            target[i] = value.reshape(target.shape[1:])
    out.update(nexts)
    return out


def _read_laber(source: object, name: str, archive: _Archive) -> TransitionsFile:
    """A laber checkpoint's rows, through laber's own checked loader (a scratch buffer of just the rows)."""
    archive.kind = "laber checkpoint"
    try:
        raw = archive.array(_LABER_META)
        meta = json.loads(raw.tobytes().decode("utf-8"))
        if not isinstance(meta, dict):
            raise TypeError(f"__meta__ is a JSON {type(meta).__name__}, not an object")
        version = meta.get("version")
        desc = meta["buffer"]
        stored = meta["stored"]
        specs: dict[str, Any] = desc["fields"]
        next_of = tuple(str(p).removeprefix("next_") for p in (desc.get("next_of") or ()))
        stack = tuple(str(n) for n in (desc.get("stack_compress") or ()))
        nstep = desc.get("nstep")
        bit_generator = meta["rng"]["bit_generator"]
        if not isinstance(stored, int) or stored < 0 or not isinstance(specs, dict):
            raise TypeError(f"stored={stored!r}, fields={specs!r}"[:200])
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(repr(name)):
            raise
        raise ValueError(f"{name!r} is not a valid laber checkpoint: unreadable __meta__ ({exc})") from None
    from laber import checkpoint
    from laber.buffers import ReplayBuffer
    from laber.nstep import DISCOUNT
    from laber.prioritized import PrioritizedReplayBuffer

    if meta.get("format") != checkpoint.FORMAT or version != checkpoint.VERSION:
        raise ValueError(
            f"{name!r} is not a laber checkpoint this laber reads: format={meta.get('format')!r}, "
            f"version={version!r} (expected {checkpoint.FORMAT!r} version {checkpoint.VERSION})"
        )
    hidden = sorted(n for n in specs if n.startswith("_"))
    if hidden not in ([], ["_priority"]):
        raise ValueError(f"{name!r}: a laber checkpoint of a buffer class with internal fields {hidden} is not known")
    if bit_generator not in _BIT_GENERATORS:
        raise ValueError(f"{name!r} is not a valid laber checkpoint: unknown bit generator {bit_generator!r}")
    derived = {f"next_{x}" for x in next_of}
    cls = PrioritizedReplayBuffer if hidden else ReplayBuffer
    try:
        env_dict = {
            n: {"shape": tuple(s["shape"]), "dtype": s["dtype"]}
            for n, s in specs.items()
            if n not in derived and not n.startswith("_") and not (nstep and n == DISCOUNT)
        }
        size = max(stored, int(nstep["size"]) if isinstance(nstep, dict) else 1, 1)
        buffer = cls(
            size,
            env_dict,
            next_of=list(next_of) or None,
            stack_compress=list(stack) or None,
            Nstep=dict(nstep) if isinstance(nstep, dict) else None,
            rng=np.random.Generator(getattr(np.random, bit_generator)()),
        )
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise ValueError(
            f"{name!r} is not a valid laber checkpoint: its buffer description is invalid ({exc})"
        ) from None
    with contextlib.ExitStack() as stack_:
        if isinstance(source, (str, os.PathLike)):
            path = os.fspath(source)
        else:  # laber's loader reads paths: spool the file object to a private temporary file
            tmpdir = stack_.enter_context(tempfile.TemporaryDirectory(prefix="laber-transitions-"))
            path = os.path.join(tmpdir, "checkpoint.npz")
            fobj: IO[bytes] = source  # type: ignore[assignment]
            fobj.seek(0)
            with open(path, "wb") as out:
                shutil.copyfileobj(fobj, out)
        try:
            checkpoint.load(buffer, path)
        except ValueError as exc:
            raise ValueError(str(exc).replace(repr(path), repr(name))) from None
        except OSError:
            raise
        except Exception as exc:  # a corrupt member that laber.checkpoint lets through (e.g. zipfile.BadZipFile)
            raise ValueError(
                f"{name!r} is not a valid laber checkpoint: it cannot be read ({type(exc).__name__}: {exc})"
            ) from None
    k = buffer.get_stored_size()
    order = np.arange(k, dtype=np.int64)
    rows = buffer.get_all_transitions()  # ring order 0 .. k - 1
    if buffer.get_buffer_size() == k and buffer.get_next_index():  # the file's size: its ring came back as is
        order = (order + buffer.get_next_index()) % k
        rows = {n: v[order] for n, v in rows.items()}
    fields = {n: np.ascontiguousarray(v) for n, v in rows.items()}
    priorities = buffer.get_priorities(order) if isinstance(buffer, PrioritizedReplayBuffer) else None
    public = set(env_dict) | derived
    pending = {
        m.removeprefix("pending/").removesuffix(".npy"): _plain_array(archive, m)
        for m in archive.members
        if m.startswith("pending/") and m.removeprefix("pending/").removesuffix(".npy") in public
    }
    return TransitionsFile(
        path=name,
        format=_FORMAT_LABER,
        version=int(version),
        fields=fields,
        order="oldest-first",
        nstep=nstep is not None,
        safe=None,
        next_of=next_of,
        stack_compress=stack,
        priorities=priorities,
        nstep_config=dict(nstep) if isinstance(nstep, dict) else None,
        pending=pending,
    )


def _plain_array(archive: _Archive, member: str) -> np.ndarray:
    """A member read with ``allow_pickle=False`` only (laber checkpoints hold no pickle)."""
    with archive.zf.open(member) as fp:
        arr: np.ndarray = np.lib.format.read_array(fp, allow_pickle=False)
    return arr


# ================================================================================================ writing
def npz_path(file: str | os.PathLike[str]) -> str:
    """The name ``numpy.savez`` (so cpprb's ``save_transitions``) writes for ``file``: ``.npz`` appended unless
    the name already ends with it (``"a"`` -> ``"a.npz"``, ``"a.npz"`` -> ``"a.npz"``, ``"a.NPZ"`` ->
    ``"a.NPZ.npz"``)."""
    path = os.fspath(file)
    return path if path.endswith(".npz") else f"{path}.npz"


def _object_array(value: object) -> np.ndarray:
    out = np.empty((), dtype=object)
    out[()] = value
    return out


def _check_fields(fields: object) -> dict[str, np.ndarray]:
    if not isinstance(fields, Mapping) or not fields:
        raise TypeError(f"fields must be a non-empty dict of arrays (rows, *shape), got fields={fields!r}"[:300])
    out: dict[str, np.ndarray] = {}
    rows = -1
    for name, value in fields.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"field names must be non-empty strings, got {name!r}")
        arr = np.asarray(value)
        if arr.dtype.hasobject or arr.dtype.kind not in "biufc":
            raise TypeError(f"field {name!r} must be a numeric or bool array, got dtype {arr.dtype}")
        if arr.ndim < 1:
            raise ValueError(f"field {name!r} must have a leading row axis (rows, *shape), got shape {arr.shape}")
        if rows >= 0 and arr.shape[0] != rows:
            raise ValueError(f"fields must hold the same number of rows: {rows} before, {arr.shape[0]} for {name!r}")
        rows = arr.shape[0]
        out[name] = np.ascontiguousarray(arr)
    return out


def _names(value: object, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) else tuple(value) if isinstance(value, (list, tuple)) else None
    if not names or not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"{what} must be None, a field name or a list of them, got {what}={value!r}")
    return names


def _bitwise_equal_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, whether ``a[i]`` and ``b[i]`` hold the same bytes (rows of one dtype and shape)."""
    rows = a.shape[0]
    left = np.ascontiguousarray(a).reshape(rows, -1).view(np.uint8)
    right = np.ascontiguousarray(b).reshape(rows, -1).view(np.uint8)
    same: np.ndarray = (left == right).all(axis=1)
    return same


def _unsafe_layout(
    fields: dict[str, np.ndarray], next_of: tuple[str, ...], stack_compress: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict[int, dict[str, np.ndarray]]]:
    """cpprb's unsafe layout of ``fields`` (rows in file order).

    ``next_of`` name ``x``: ``next_x`` is left out of ``data`` and kept in ``cache`` only for the rows where it
    is not the following row's ``x`` (bitwise) and for the last row. ``stack_compress`` field: ``cache`` holds
    the stack of each row whose stack the following row does not continue (``stack[i + 1][..., :-1] !=
    stack[i][..., 1:]``): cpprb's loader ends an episode after each cached row, which keeps the stacks of a
    cpprb ``stack_compress`` buffer intact across episodes (a safe file, loaded as one batch, does not).
    """
    rows = next(iter(fields.values())).shape[0]
    cache: dict[int, dict[str, np.ndarray]] = {}
    for x in next_of:
        nxt = f"next_{x}"
        if x not in fields or nxt not in fields:
            raise ValueError(f"next_of={x!r} needs the fields {x!r} and {nxt!r}, got fields {sorted(fields)}")
        a, b = fields[x], fields[nxt]
        if a.shape != b.shape or a.dtype != b.dtype:
            raise ValueError(
                f"next_of={x!r}: {x!r} and {nxt!r} must have one shape and dtype, got {a.dtype} {a.shape[1:]} and "
                f"{b.dtype} {b.shape[1:]}"
            )
        if rows:
            ends = [*np.flatnonzero(~_bitwise_equal_rows(b[:-1], a[1:])).tolist(), rows - 1]
            for i in ends:
                cache.setdefault(int(i), {})[nxt] = b[i].copy()
    for name in stack_compress:
        if name not in fields or name in {f"next_{x}" for x in next_of}:
            raise ValueError(f"stack_compress names {name!r}, which is not a stored field of fields {sorted(fields)}")
        v = fields[name]
        if v.ndim < 2 or v.shape[-1] < 2:
            raise ValueError(
                f"stack_compress field {name!r} must stack at least 2 frames along its last axis, got shape "
                f"{v.shape[1:]}"
            )
        if rows > 1:
            for i in np.flatnonzero(~_bitwise_equal_rows(v[1:, ..., :-1], v[:-1, ..., 1:])).tolist():
                cache.setdefault(int(i), {})[name] = v[i].copy()
    derived = {f"next_{x}" for x in next_of}
    data = {n: v for n, v in fields.items() if n not in derived}
    return data, dict(sorted(cache.items()))


def _write_npz(fh: IO[bytes], members: Mapping[str, np.ndarray]) -> None:
    """What ``numpy.savez_compressed`` (so cpprb) writes: a deflated zip of ``.npy`` members, object arrays
    pickled (``data``, ``cache`` and a ``None`` ``next_of``: cpprb's loader unpickles them)."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for name, array in members.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as out:
                np.lib.format.write_array(out, array, allow_pickle=True)


def write_transitions(
    file: str | os.PathLike[str] | IO[bytes],
    fields: Mapping[str, Any],
    *,
    safe: bool = True,
    nstep: bool = False,
    next_of: str | list[str] | tuple[str, ...] | None = None,
    stack_compress: str | list[str] | tuple[str, ...] | None = None,
) -> str | None:
    """Write ``fields`` as a cpprb transitions file (format version 1) that cpprb's ``load_transitions`` reads.

    Args:
        file: a path (``.npz`` is appended when the name lacks it, as ``numpy.savez``, hence cpprb, does) or a
            binary file object (written in place, no suffix).
        fields: ``name -> array (rows, *shape)``, numeric or bool, one number of rows. Rows in the order the
            reader should add them (oldest first: a smaller buffer then keeps the newest).
        safe: ``False`` writes cpprb's unsafe layout when ``next_of`` or ``stack_compress`` is given
            (``_unsafe_layout``: ``next_<x>`` kept only where it is not the next row's ``x``, episode ends of
            stacks marked); without either the file is safe whatever ``safe`` says, as in cpprb.
        nstep: the rows are finished N-step rows (cpprb's ``Nstep`` flag: cpprb loads the file only into an
            N-step buffer, and an N-step file only into one).
        next_of: ``next_of`` names (used by ``safe=False`` only); each needs ``x`` and ``next_x`` in ``fields``.
        stack_compress: stacked fields (stack on the last axis; used by ``safe=False`` only).

    Returns the path written (``None`` for a file object). A path is written atomically: into a temporary
    ``.<name>.laber-<hex>.tmp`` in the same directory (removed on failure), flushed, then renamed over the
    target; stale temporaries of killed laber saves to the same name are cleaned as for checkpoints, and no
    other file is ever deleted.

    Raises ``TypeError``/``ValueError`` naming the argument before anything is written.
    """
    if not isinstance(safe, (bool, np.bool_)) or not isinstance(nstep, (bool, np.bool_)):
        raise TypeError(f"safe and nstep must be True or False, got safe={safe!r}, nstep={nstep!r}")
    arrays = _check_fields(fields)
    names = _names(next_of, "next_of")
    stacked = _names(stack_compress, "stack_compress")
    compress = not safe and bool(names or stacked)
    if compress:
        data, cache = _unsafe_layout(arrays, names, stacked)
    else:
        data, cache = arrays, {}
    members = {
        "safe": np.array(not compress),
        "version": np.array(CPPRB_FORMAT_VERSION),
        "data": _object_array(data),
        "Nstep": np.array(bool(nstep)),
        "cache": _object_array(cache if compress else None),
        "next_of": np.array(names, ndmin=1) if compress and names else _object_array(None),
    }
    if not isinstance(file, (str, os.PathLike)):
        if not callable(getattr(file, "write", None)):
            raise TypeError(f"file must be a path (str or os.PathLike) or a binary file object, got file={file!r}")
        _write_npz(file, members)
        return None
    from laber.checkpoint import write_atomically

    target = Path(npz_path(file))
    write_atomically(target, lambda fh: _write_npz(fh, members))
    return str(target)
