"""Transitions files (``laber.transitions``): cpprb's format read (committed fixtures of cpprb 10.7.2 and 11.0.0,
and cpprb side by side when it imports) and written (cpprb loads laber's files as it loads its own), laber
checkpoints read as rows, the ``.npz`` suffix, atomic writes, and one clear ValueError per bad file."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from laber import PrioritizedReplayBuffer, ReplayBuffer
from laber import checkpoint as ckpt
from laber import transitions as tr
from laber.transitions import TransitionsFile, read_transitions, write_transitions

DATA = Path(__file__).parent / "data" / "cpprb"
_spec = importlib.util.spec_from_file_location("make_fixtures", DATA / "make_fixtures.py")
assert _spec is not None and _spec.loader is not None
mf = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mf)

VERSIONS = sorted(p.name for p in DATA.glob("cpprb-*") if p.is_dir())
FIXTURES = sorted(p for v in VERSIONS for p in (DATA / v).glob("*-*-*.npz"))


def same(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> bool:
    """Same field names in the same order, and bitwise the same arrays (dtype and shape included)."""
    return list(a) == list(b) and all(a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]) for k in a)


def split(path: Path) -> tuple[str, str, str]:
    config, fill, mode = path.stem.split("-")
    return config, fill, mode


def expected_rows(path: Path) -> dict[str, np.ndarray]:
    config, fill, _ = split(path)
    with np.load(path.parent / "expected.npz", allow_pickle=False) as exp:
        prefix = f"{config}-{fill}/"
        return {k[len(prefix) :]: exp[k] for k in exp.files if k.startswith(prefix) and not k.endswith("__stored__")}


def raw_members(path: Path) -> dict[str, Any]:
    """The members of a (trusted, test-made) transitions file, unpickled by numpy."""
    with np.load(path, allow_pickle=True) as f:
        return {k: f[k] for k in f.files}


def fixture_ids(p: Path) -> str:
    return f"{p.parent.name}/{p.stem}"


# ============================================================================================ committed fixtures
def test_fixtures_are_present() -> None:
    assert VERSIONS == ["cpprb-10.7.2", "cpprb-11.0.0"]
    assert len(FIXTURES) == 64


@pytest.mark.parametrize("path", FIXTURES, ids=fixture_ids)
def test_fixture_reads_as_cpprb_get_all_transitions(path: Path) -> None:
    config, _, mode = split(path)
    data = read_transitions(path)
    assert same(data.fields, expected_rows(path))
    kwargs = mf.CONFIGS[config][2]
    compressed = mode == "unsafe" and ("next_of" in kwargs or "stack_compress" in kwargs)
    assert (data.format, data.version, data.order, data.path) == ("cpprb", 1, "storage", str(path))
    assert data.safe is (not compressed)
    assert data.nstep is ("Nstep" in kwargs)
    # cpprb disables next_of with Nstep; only unsafe files record next_of
    assert data.next_of == (("obs",) if compressed and "next_of" in kwargs and "Nstep" not in kwargs else ())
    assert data.priorities is None and data.pending == {} and data.stack_compress == ()
    assert data.rows == next(iter(expected_rows(path).values())).shape[0]


@pytest.mark.parametrize("version", VERSIONS)
def test_unsafe_fixtures_really_need_their_cache(version: str) -> None:
    """In the unsafe files the raw ``data`` differs from the rows: the cache and the next_of rule are exercised."""
    for config in ("stack", "next_of_stack", "nstep_stack"):
        path = DATA / version / f"{config}-wrapped-unsafe.npz"
        raw = raw_members(path)
        stacks = raw["data"].item()["obs"]
        assert not np.array_equal(stacks, expected_rows(path)["obs"]), config
        assert raw["cache"].item(), config
    raw = raw_members(DATA / version / "next_of-wrapped-unsafe.npz")
    assert "next_obs" not in raw["data"].item() and list(raw["next_of"]) == ["obs"]


def transition_rows(kind: str) -> list[dict[str, Any]]:
    return [step for episode in mf.transitions(kind) for step in episode]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("config", ["plain", "next_of", "per"])
def test_fixture_rows_in_closed_form(version: str, config: str) -> None:
    """12 transitions into 16 rows: transition j at row j; into 8 rows: row p holds transition p + 8 for p < 4
    (the ring wrapped), else p: cpprb's storage order, which is not oldest first."""
    steps = transition_rows("flat")
    for fill, order in (("partial", list(range(12))), ("wrapped", [8, 9, 10, 11, 4, 5, 6, 7])):
        data = read_transitions(DATA / version / f"{config}-{fill}-safe.npz")
        assert data.rows == len(order)
        for name in ("obs", "act", "rew", "next_obs", "done"):
            want = np.array([np.asarray(steps[j][name]) for j in order]).reshape(data.fields[name].shape)
            np.testing.assert_array_equal(data.fields[name], want)
        assert data.fields["obs"].dtype == np.float32 and data.fields["act"].dtype == np.uint8


@pytest.mark.parametrize("version", VERSIONS)
def test_nstep_fixture_rows_in_closed_form(version: str) -> None:
    """What cpprb stores for N-step (n = 3, gamma = 0.5): per episode, the window of each step t cut at the
    episode's end (k = min(3, L - t) steps), R_t = sum_j 0.5**j r_(t+j); the last episode (5 steps, not ended)
    has its 2 last steps still pending, which are not saved. cpprb's own quirks, kept as they are: the "next"
    fields of windows cut short by ``on_episode_end`` hold its scratch buffer's fill value 1 (not the episode's
    last next_obs), and no bootstrap discount is stored."""
    episodes = mf.transitions("flat")
    want: dict[str, list[Any]] = {"obs": [], "act": [], "rew": [], "next_obs": []}
    for e, steps in enumerate(episodes):
        length = len(steps)
        last = length if e < len(episodes) - 1 else length - 2
        for t in range(last):
            k = min(3, length - t)
            window = steps[t : t + k]
            want["obs"].append(steps[t]["obs"])
            want["act"].append(steps[t]["act"])
            want["rew"].append(sum(0.5**j * s["rew"] for j, s in enumerate(window)))
            want["next_obs"].append(window[-1]["next_obs"] if k == 3 else np.ones(3))
    for config in ("nstep", "per_nstep"):
        data = read_transitions(DATA / version / f"{config}-partial-safe.npz")
        assert data.nstep and data.rows == 10 and list(data.fields) == ["obs", "act", "rew", "next_obs", "done"]
        for name, values in want.items():
            np.testing.assert_allclose(data.fields[name].reshape(10, -1), np.array(values, float).reshape(10, -1))
    # cpprb's N-step buffer with next_of drops next_obs altogether
    data = read_transitions(DATA / version / "nstep_next_of-partial-safe.npz")
    assert list(data.fields) == ["obs", "act", "rew", "done"]


# ================================================================================================ bad files
def write_members(path: Path, members: dict[str, Any]) -> Path:
    """An .npz of ``members`` as numpy writes it (object members pickled)."""
    with open(path, "wb") as fh:
        np.savez_compressed(fh, **members)
    return path


def cpprb_members(**overrides: Any) -> dict[str, Any]:
    obs = np.arange(8, dtype=np.float32).reshape(4, 2)
    data = {"obs": obs, "rew": np.ones((4, 1), np.float32)}
    members: dict[str, Any] = {
        "safe": np.array(True),
        "version": np.array(1),
        "data": tr._object_array(data),
        "Nstep": np.array(False),
        "cache": tr._object_array(None),
        "next_of": tr._object_array(None),
    }
    members.update(overrides)
    return members


def with_payload(path: Path, member: str, payload: bytes, base: dict[str, Any] | None = None) -> Path:
    """A cpprb-like file whose object member ``member`` is the raw pickle ``payload``."""
    write_members(path, {k: v for k, v in (base or cpprb_members()).items() if k != member})
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|O", "fortran_order": False, "shape": ()})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(f"{member}.npy", header.getvalue() + payload)
    return path


def expect_value_error(path: Path, *fragments: str) -> None:
    with pytest.raises(ValueError) as info:
        read_transitions(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, message


def test_a_minimal_handmade_cpprb_file_reads(tmp_path: Path) -> None:
    data = read_transitions(write_members(tmp_path / "ok.npz", cpprb_members()))
    assert data.rows == 4 and list(data.fields) == ["obs", "rew"]


def test_neither_format(tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    expect_value_error(text, "not an .npz (zip) archive", "cpprb transitions file", "laber checkpoint")
    npy = tmp_path / "one.npy"
    np.save(npy, np.zeros(3))
    expect_value_error(npy, ".npy file")
    other = tmp_path / "other.npz"
    np.savez(other, weights=np.zeros(3))
    expect_value_error(other, "neither format", "['weights']", "save_transitions", "save_checkpoint")
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(FIXTURES[0].read_bytes()[:300])
    expect_value_error(truncated, "not an .npz")


def test_version_other_than_1_is_refused(tmp_path: Path) -> None:
    path = write_members(tmp_path / "v2.npz", cpprb_members(version=np.array(2)))
    expect_value_error(path, "format version 2 is not supported", "version 1")


class _Evil:
    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))

    marker = ""


def test_a_pickle_of_anything_but_arrays_is_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    payload = pickle.dumps(np.array({"obs": _Evil()}, dtype=object), protocol=3)
    path = with_payload(tmp_path / "evil.npz", "data", payload)
    expect_value_error(path, "system", "does not unpickle arbitrary objects")
    assert not marker.exists()
    # a persistent id, and builtins (eval) via the cache member
    expect_value_error(with_payload(tmp_path / "pid.npz", "data", b"\x80\x03Pabc\n."), "persistent id")
    payload = pickle.dumps(np.array(eval, dtype=object), protocol=4)
    path = with_payload(tmp_path / "eval.npz", "cache", payload, cpprb_members(safe=np.array(False)))
    expect_value_error(path, "builtins.eval")


def test_a_pickle_that_is_not_the_array_its_header_announces(tmp_path: Path) -> None:
    expect_value_error(with_payload(tmp_path / "a.npz", "data", pickle.dumps({"obs": 1}, protocol=3)), "object array")
    expect_value_error(with_payload(tmp_path / "b.npz", "data", b"\x80\x03"), "cannot be read")


def bad_cpprb_cases() -> Iterator[tuple[str, dict[str, Any], str]]:
    obs = np.arange(8, dtype=np.float32).reshape(4, 2)
    unsafe = {"safe": np.array(False), "next_of": np.array(["obs"])}
    yield "data-not-dict", {"data": tr._object_array([obs])}, "must hold a dict"
    yield "data-empty", {"data": tr._object_array({})}, "no field"
    yield "data-int-key", {"data": tr._object_array({3: obs})}, "not a field name"
    yield "rows-differ", {"data": tr._object_array({"obs": obs, "rew": np.ones(3)})}, "different numbers of rows"
    yield "nested-object", {"data": tr._object_array({"obs": np.array([None] * 4)})}, "numeric array"
    yield "not-array", {"data": tr._object_array({"obs": [1, 2]})}, "numeric array"
    yield "scalar-field", {"data": tr._object_array({"obs": np.float32(1)})}, "numeric array"
    yield "version-float", {"version": np.array(1.0)}, "'version' must be a 0-d integer"
    yield "safe-shape", {"safe": np.array([True, False])}, "'safe' must be a 0-d bool"
    yield "nstep-object", {"Nstep": tr._object_array("yes")}, "'Nstep' must be a 0-d bool"
    yield "cache-none", {**unsafe, "data": tr._object_array({"obs": obs})}, "'cache' of an unsafe file must hold"
    yield "cache-range", {**unsafe, "cache": tr._object_array({4: {"next_obs": obs[0]}})}, "row 4, outside"
    yield "cache-key", {**unsafe, "cache": tr._object_array({"a": {}})}, "not a row index"
    yield "cache-bool", {**unsafe, "cache": tr._object_array({True: {}})}, "not a row index"
    yield "cache-entry", {**unsafe, "cache": tr._object_array({0: [1]})}, "must hold a dict"
    yield "cache-name", {**unsafe, "cache": tr._object_array({0: {"act": obs[0]}})}, "neither a field"
    yield "cache-shape", {**unsafe, "cache": tr._object_array({0: {"next_obs": obs}})}, "must be an array of shape"
    yield "cache-dtype", {**unsafe, "cache": tr._object_array({0: {"obs": np.ones(2, complex)}})}, "has dtype"
    yield "next_of-unknown", {**unsafe, "next_of": np.array(["act"]), "cache": tr._object_array({})}, "'act'"
    yield "next_of-twice", {**unsafe, "next_of": np.array(["obs", "obs"]), "cache": tr._object_array({})}, "twice"
    yield "next_of-int", {**unsafe, "next_of": np.array([1]), "cache": tr._object_array({})}, "'next_of' must be"
    yield "next_of-object", {**unsafe, "next_of": tr._object_array(["obs"]), "cache": tr._object_array({})}, "None"
    stored = {"obs": obs, "next_obs": obs}
    yield "next_of-stored", {**unsafe, "data": tr._object_array(stored), "cache": tr._object_array({})}, "must not"


@pytest.mark.parametrize(("case", "overrides", "fragment"), list(bad_cpprb_cases()), ids=lambda x: str(x)[:20])
def test_malformed_cpprb_content(case: str, overrides: dict[str, Any], fragment: str, tmp_path: Path) -> None:
    path = write_members(tmp_path / f"{case}.npz", cpprb_members(**overrides))
    expect_value_error(path, "not a valid cpprb transitions file", fragment)


def test_unsafe_without_cache_entries(tmp_path: Path) -> None:
    members = {k: v for k, v in cpprb_members(safe=np.array(False)).items() if k != "cache"}
    expect_value_error(write_members(tmp_path / "x.npz", members), "needs the entries 'cache' and 'next_of'")


@pytest.mark.parametrize("member", ["safe", "version", "data", "Nstep", "cache", "next_of"])
@pytest.mark.parametrize(
    "junk", [np.array(3), np.zeros((2, 2)), np.array("text"), None, {}, [1, 2]], ids=lambda x: type(x).__name__
)
def test_junk_in_any_member_is_a_value_error(member: str, junk: Any, tmp_path: Path) -> None:
    """Whatever a member holds, reading gives a result or one ValueError naming the file, never another error."""
    value = junk if isinstance(junk, np.ndarray) else tr._object_array(junk)
    for safe in (True, False):
        members = cpprb_members(safe=np.array(safe), cache=tr._object_array({}), next_of=np.array(["obs"]))
        members["data"] = tr._object_array({"obs": np.zeros((4, 2)), "rew": np.zeros((4, 1))})
        members[member] = value
        path = write_members(tmp_path / f"{member}-{safe}.npz", members)
        try:
            read_transitions(path)
        except ValueError as exc:
            assert str(path) in str(exc)


@pytest.mark.parametrize("kind", ["cpprb", "laber"])
def test_corrupted_bytes_are_a_value_error(kind: str, tmp_path: Path) -> None:
    """Every byte flipped in turn (a sample of them): a result or one ValueError, never another exception."""
    source = DATA / "cpprb-11.0.0" / "next_of_stack-wrapped-unsafe.npz"
    if kind == "laber":
        source = tmp_path / "ckpt.npz"
        ckpt.save(laber_buffer("next_of+stack+nstep", 8), source)
    original = source.read_bytes()
    for i in range(0, len(original), 7 if kind == "cpprb" else 61):
        corrupt = bytearray(original)
        corrupt[i] ^= 0xFF
        path = tmp_path / "corrupt.npz"
        path.write_bytes(bytes(corrupt))
        try:
            read_transitions(path)
        except ValueError as exc:
            assert str(path) in str(exc)


def test_missing_file_and_the_npz_suffix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_transitions(tmp_path / "nothing")
    written = write_transitions(tmp_path / "run", {"obs": np.zeros((2, 3))})
    assert written == str(tmp_path / "run.npz") and not (tmp_path / "run").exists()
    with pytest.raises(FileNotFoundError, match=r"there is .*run\.npz"):
        read_transitions(tmp_path / "run")  # opened as given, as cpprb's load_transitions does
    assert read_transitions(tmp_path / "run.npz").rows == 2
    assert read_transitions(str(tmp_path / "run.npz")).rows == 2


def test_file_objects(tmp_path: Path) -> None:
    buf = io.BytesIO()
    assert write_transitions(buf, {"obs": np.arange(6).reshape(3, 2)}) is None
    buf.seek(0)
    data = read_transitions(buf)
    np.testing.assert_array_equal(data.fields["obs"], np.arange(6).reshape(3, 2))
    with open(FIXTURES[0], "rb") as fh:
        assert same(read_transitions(fh).fields, expected_rows(FIXTURES[0]))
    with pytest.raises(TypeError, match="binary"), open(FIXTURES[0], encoding="latin-1") as text:
        read_transitions(text)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path"):
        read_transitions(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path"):
        write_transitions(3, {"obs": np.zeros(2)})  # type: ignore[arg-type]


# ================================================================================================ writing
def test_npz_suffix_matches_numpy(tmp_path: Path) -> None:
    for name in ("a", "b.npz", "c.NPZ", "d.npz.bak", "e.tar"):
        assert tr.npz_path(tmp_path / name) == str(tmp_path / name) + ("" if name.endswith(".npz") else ".npz")
        np.savez_compressed(tmp_path / f"np-{name}", x=np.zeros(1))
        write_transitions(tmp_path / f"lb-{name}", {"x": np.zeros(1)})
    made = sorted(p.name for p in tmp_path.iterdir())
    assert [n[3:] for n in made if n.startswith("lb-")] == [n[3:] for n in made if n.startswith("np-")]


def flat_fields(rows: int = 5) -> dict[str, np.ndarray]:
    obs = np.arange(rows * 3, dtype=np.float32).reshape(rows, 3)
    return {"obs": obs, "act": np.arange(rows, dtype=np.uint8).reshape(rows, 1), "next_obs": obs + 3}


def test_round_trip_safe_and_unsafe(tmp_path: Path) -> None:
    fields = flat_fields()
    fields["next_obs"][2] = -1  # an episode end: next_obs[2] is not obs[3]
    for safe in (True, False):
        path = write_transitions(tmp_path / f"rt-{safe}", fields, safe=safe, nstep=True, next_of="obs")
        assert path is not None
        data = read_transitions(path)
        assert data.nstep and data.safe is safe
        assert data.fields.keys() == fields.keys()
        for k in fields:
            np.testing.assert_array_equal(data.fields[k], fields[k])
    raw = raw_members(tmp_path / "rt-False.npz")
    assert list(raw) == ["safe", "version", "data", "Nstep", "cache", "next_of"]
    assert list(raw["data"].item()) == ["obs", "act"]  # next_obs kept only where it is not the next row's obs
    cache = raw["cache"].item()
    assert sorted(cache) == [2, 4] and list(cache[2]) == ["next_obs"]
    np.testing.assert_array_equal(cache[2]["next_obs"], [-1, -1, -1])
    assert raw["next_of"].tolist() == ["obs"] and raw["version"] == 1 and raw["Nstep"]
    # without next_of / stack_compress there is nothing to compress: the file is safe, as cpprb's
    assert read_transitions(write_transitions(tmp_path / "plain", fields, safe=False) or "").safe is True


def test_unsafe_stack_layout_marks_episode_ends(tmp_path: Path) -> None:
    frames = np.array([0, 1, 2, 3, 10, 11, 12], dtype=np.uint8)  # two episodes: frames 0..3, then 10..12
    stacks = np.stack([frames[i : i + 2] for i in (0, 1, 2, 4, 5)])[:, None, :]  # (5, 1, 2), depth 2
    path = write_transitions(tmp_path / "stack", {"obs": stacks}, safe=False, stack_compress="obs")
    assert path is not None
    raw = raw_members(Path(path))
    assert list(raw["cache"].item()) == [2] and raw["next_of"].item() is None and not raw["safe"]
    np.testing.assert_array_equal(read_transitions(path).fields["obs"], stacks)


def test_empty_transitions(tmp_path: Path) -> None:
    for safe in (True, False):
        fields = {"obs": np.zeros((0, 3), np.float32), "next_obs": np.zeros((0, 3), np.float32)}
        path = write_transitions(tmp_path / f"e{safe}", fields, safe=safe, next_of="obs")
        assert path is not None
        assert same(read_transitions(path).fields, fields) and read_transitions(path).rows == 0


@pytest.mark.parametrize(
    ("fields", "kwargs", "error", "fragment"),
    [
        ({}, {}, TypeError, "non-empty dict"),
        ([np.zeros(2)], {}, TypeError, "non-empty dict"),
        ({"": np.zeros(2)}, {}, TypeError, "non-empty strings"),
        ({"obs": np.array([None, None])}, {}, TypeError, "numeric"),
        ({"obs": np.array(["a", "b"])}, {}, TypeError, "numeric"),
        ({"obs": np.float32(1)}, {}, ValueError, "leading row axis"),
        ({"obs": np.zeros(2), "rew": np.zeros(3)}, {}, ValueError, "same number of rows"),
        ({"obs": np.zeros(2)}, {"safe": 0}, TypeError, "safe and nstep"),
        ({"obs": np.zeros(2)}, {"nstep": "yes"}, TypeError, "safe and nstep"),
        ({"obs": np.zeros(2)}, {"next_of": 3}, TypeError, "next_of must be"),
        ({"obs": np.zeros(2)}, {"next_of": "obs", "safe": False}, ValueError, "needs the fields"),
        ({"obs": np.zeros((2, 2)), "next_obs": np.zeros((2, 3))}, {"next_of": "obs", "safe": False}, ValueError, "one"),
        ({"obs": np.zeros((2, 2))}, {"stack_compress": "rew", "safe": False}, ValueError, "not a stored field"),
        ({"obs": np.zeros((2, 1))}, {"stack_compress": "obs", "safe": False}, ValueError, "at least 2 frames"),
    ],
)
def test_write_validation(
    fields: Any, kwargs: dict[str, Any], error: type[Exception], fragment: str, tmp_path: Path
) -> None:
    with pytest.raises(error, match=fragment):
        write_transitions(tmp_path / "bad", fields, **kwargs)
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_atomic_write_and_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "data.npz"
    write_transitions(target, flat_fields(3))
    foreign = [tmp_path / n for n in (".data.npz.tmp", "data.npz.bak", ".data.npz.laber-xyz.tmp", "other.npz")]
    for f in foreign:
        f.write_bytes(b"not laber's")
    before = target.read_bytes()

    def boom(fh: Any, members: Any) -> None:
        fh.write(b"PK\x03\x04 half")
        raise OSError("disk full")

    monkeypatch.setattr(tr, "_write_npz", boom)
    with pytest.raises(OSError, match="disk full"):
        write_transitions(target, flat_fields(4))
    monkeypatch.undo()
    assert target.read_bytes() == before  # the old file is intact, no temporary left, nothing else touched
    assert sorted(tmp_path.iterdir()) == sorted([target, *foreign])
    write_transitions(target, flat_fields(4))
    assert read_transitions(target).rows == 4
    assert sorted(tmp_path.iterdir()) == sorted([target, *foreign])
    assert all(f.read_bytes() == b"not laber's" for f in foreign)


def test_a_killed_writes_temporary_is_removed_by_the_next_write(tmp_path: Path) -> None:
    stale = tmp_path / ".data.npz.laber-0123456789abcdef.tmp"
    stale.write_bytes(b"PK\x03\x04 a killed save")
    write_transitions(tmp_path / "data", flat_fields())
    assert not stale.exists() and (tmp_path / "data.npz").exists()


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_usual_permissions(umask: int, tmp_path: Path) -> None:
    old = os.umask(umask)
    try:
        path = write_transitions(tmp_path / "p", flat_fields())
    finally:
        os.umask(old)
    assert path is not None
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


# ================================================================================================ laber checkpoints
NSTEP = {"size": 3, "rew": "rew", "gamma": 0.5, "next": "next_obs"}
FLAT = {"obs": {"shape": 3}, "act": {"dtype": np.uint8}, "rew": {}, "next_obs": {"shape": 3}, "done": {}}
FLAT_NEXT_OF = {k: v for k, v in FLAT.items() if k != "next_obs"}
STACK = {"obs": {"shape": (2, 3), "dtype": np.uint8}, "rew": {}, "done": {}}
LABER_CONFIGS: dict[str, tuple[type[ReplayBuffer], dict[str, Any]]] = {
    "plain": (ReplayBuffer, {"env_dict": FLAT}),
    "next_of": (ReplayBuffer, {"env_dict": FLAT_NEXT_OF, "next_of": "obs"}),
    "stack": (ReplayBuffer, {"env_dict": {**STACK, "next_obs": STACK["obs"]}, "stack_compress": "obs"}),
    "nstep": (ReplayBuffer, {"env_dict": FLAT, "Nstep": NSTEP}),
    "next_of+stack+nstep": (
        ReplayBuffer,
        {"env_dict": STACK, "next_of": "obs", "stack_compress": "obs", "Nstep": NSTEP},
    ),
    "per": (PrioritizedReplayBuffer, {"env_dict": FLAT}),
    "per+nstep": (PrioritizedReplayBuffer, {"env_dict": FLAT_NEXT_OF, "next_of": "obs", "Nstep": NSTEP}),
}


def laber_buffer(config: str, size: int) -> ReplayBuffer:
    cls, kwargs = LABER_CONFIGS[config]
    rb = cls(size, rng=np.random.Generator(np.random.MT19937(5)), **kwargs)
    kind = "stack" if "stack" in config else "flat"
    for e, steps in enumerate(mf.transitions(kind)):
        for s in steps:
            row = {k: v for k, v in s.items() if k != "priorities" and (k in kwargs["env_dict"] or k == "next_obs")}
            if isinstance(rb, PrioritizedReplayBuffer):
                rb.add(priorities=s["priorities"], **row)
            else:
                rb.add(**row)
        if e < 2:
            rb.on_episode_end()
    return rb


def oldest_first(rb: ReplayBuffer) -> np.ndarray:
    stored, size, nxt = rb.get_stored_size(), rb.get_buffer_size(), rb.get_next_index()
    return (np.arange(stored) + (nxt if stored == size else 0)) % max(stored, 1)


@pytest.mark.parametrize("size", [8, 16])
@pytest.mark.parametrize("config", list(LABER_CONFIGS))
def test_laber_checkpoints_read_as_rows_oldest_first(config: str, size: int, tmp_path: Path) -> None:
    rb = laber_buffer(config, size)
    path = tmp_path / "ckpt.npz"
    ckpt.save(rb, path)
    data = read_transitions(path)
    order = oldest_first(rb)
    want = {k: v[order] for k, v in rb.get_all_transitions().items()}
    assert same(data.fields, want)
    assert (data.format, data.version, data.order, data.safe) == (
        "laber-checkpoint",
        ckpt.VERSION,
        "oldest-first",
        None,
    )
    kwargs = LABER_CONFIGS[config][1]
    assert data.nstep is ("Nstep" in kwargs) and ("discount" in data.fields) is data.nstep
    assert data.nstep_config == ({**NSTEP, "rew": ["rew"], "next": ["next_obs"]} if data.nstep else None)
    assert data.next_of == (("obs",) if "next_of" in kwargs else ())
    assert data.stack_compress == (("obs",) if "stack_compress" in kwargs else ())
    if isinstance(rb, PrioritizedReplayBuffer):
        assert data.priorities is not None
        np.testing.assert_array_equal(data.priorities, rb.get_priorities()[order])
    else:
        assert data.priorities is None
    if data.nstep:  # the last episode's 2 last steps are still waiting for their window
        assert {k: v.shape[0] for k, v in data.pending.items()} == {k: 2 for k in data.pending}
        assert "obs" in data.pending and not any(k.startswith("_") for k in data.pending)
        np.testing.assert_array_equal(
            data.pending["obs"][0], mf.transitions("stack" if "stack" in config else "flat")[2][3]["obs"]
        )
    else:
        assert data.pending == {}
    with open(path, "rb") as fh:  # and from a file object
        assert same(read_transitions(fh).fields, want)
    # a laber checkpoint's rows, written as a cpprb file, come back the same
    again = read_transitions(write_transitions(tmp_path / "as-cpprb", data.fields, nstep=data.nstep) or "")
    assert same(again.fields, want) and again.format == "cpprb"


def test_malformed_laber_checkpoints(tmp_path: Path) -> None:
    rb = laber_buffer("next_of", 8)
    path = tmp_path / "ckpt.npz"
    ckpt.save(rb, path)
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}

    def variant(name: str, change: Callable[[dict[str, bytes]], None]) -> Path:
        copy = dict(members)
        change(copy)
        out = tmp_path / f"{name}.npz"
        with zipfile.ZipFile(out, "w") as zf:
            for n, b in copy.items():
                zf.writestr(n, b)
        return out

    def meta(**changes: Any) -> Callable[[dict[str, bytes]], None]:
        def change(copy: dict[str, bytes]) -> None:
            buf = io.BytesIO(copy["__meta__.npy"])
            m = json.loads(np.lib.format.read_array(buf).tobytes().decode())
            for key, value in changes.items():
                target = m
                *parents, last = key.split(".")
                for p in parents:
                    target = target[p]
                target[last] = value
            out = io.BytesIO()
            np.save(out, np.frombuffer(json.dumps(m).encode(), np.uint8))
            copy["__meta__.npy"] = out.getvalue()

        return change

    def drop_rows(copy: dict[str, bytes]) -> None:
        del copy["rows.npy"]

    expect_value_error(variant("no-rows", drop_rows), "'rows' is missing")
    expect_value_error(variant("short-rows", lambda c: c.update({"rows.npy": c["rows.npy"][:-8]})), "rows")
    expect_value_error(variant("meta-junk", lambda c: c.update({"__meta__.npy": b"junk"})), "__meta__")
    expect_value_error(variant("format", meta(format="other")), "format='other'")
    expect_value_error(variant("version", meta(version=99)), "version=99")
    expect_value_error(variant("stored", meta(stored=-1)), "laber checkpoint")
    expect_value_error(variant("bitgen", meta(**{"rng.bit_generator": "Evil"})), "'Evil'")
    expect_value_error(variant("fields", meta(**{"buffer.fields": {"obs": {"shape": [0], "dtype": "<f4"}}})), "invalid")
    with zipfile.ZipFile(path) as zf:
        fields = json.loads(np.lib.format.read_array(io.BytesIO(zf.read("__meta__.npy"))).tobytes())["buffer"]["fields"]
    hidden = {**fields, "_secret": {"shape": [1], "dtype": "<f8"}}
    expect_value_error(variant("hidden", meta(**{"buffer.fields": hidden})), "_secret")
    junk: list[tuple[str, Any]] = [
        ("buffer", []),
        ("buffer", {}),
        ("buffer.fields", []),
        ("buffer.fields", {"obs": {"shape": "x", "dtype": 3}}),
        ("buffer.fields", {"obs": {}}),
        ("buffer.nstep", {"size": "a"}),
        ("buffer.nstep", 5),
        ("buffer.next_of", 5),
        ("buffer.stack_compress", ["nope"]),
        ("rng", 3),
        ("rng", {"bit_generator": "PCG64", "state": 1}),
        ("stored", "many"),
        ("stored", 10**6),
        ("next", -3),
    ]
    for i, (key, value) in enumerate(junk):
        with pytest.raises(ValueError) as info:
            read_transitions(variant(f"junk{i}", meta(**{key: value})))
        assert f"junk{i}.npz" in str(info.value), (key, value)


# ================================================================================================ cpprb side by side
def cpprb_or_skip() -> Any:
    return pytest.importorskip("cpprb")


SCENARIOS = [(c, f, m) for c in mf.CONFIGS for f in mf.FILLS for m in ("safe", "unsafe")]


def cpprb_kwargs(config: str) -> dict[str, Any]:
    return {k: v for k, v in mf.CONFIGS[config][2].items() if k != "mmap"}


def laber_writer_kwargs(config: str, mode: str, data: TransitionsFile) -> dict[str, Any]:
    """What laber's buffer passes: next_of (cpprb has none with Nstep) and stack_compress names, the N-step flag."""
    kw = cpprb_kwargs(config)
    return {
        "safe": mode == "safe",
        "nstep": data.nstep,
        "next_of": None if "Nstep" in kw else kw.get("next_of"),
        "stack_compress": kw.get("stack_compress"),
    }


@pytest.mark.parametrize(("config", "fill", "mode"), SCENARIOS)
def test_cpprb_to_laber(config: str, fill: str, mode: str, tmp_path: Path) -> None:
    cpprb = cpprb_or_skip()
    rb = mf.scenario(cpprb, config, fill, str(tmp_path))
    rb.save_transitions(str(tmp_path / "own"), safe=mode == "safe")
    assert (tmp_path / "own.npz").exists() and not (tmp_path / "own").exists()  # cpprb appends .npz too
    assert same(read_transitions(tmp_path / "own.npz").fields, rb.get_all_transitions())


@pytest.mark.parametrize(("config", "fill", "mode"), SCENARIOS)
def test_laber_to_cpprb_loads_as_cpprbs_own_file(config: str, fill: str, mode: str, tmp_path: Path) -> None:
    """cpprb loads laber's file exactly as it loads its own (into the same size, a larger one, and a PER buffer
    of that config); laber reads back what it wrote."""
    cpprb = cpprb_or_skip()
    rb = mf.scenario(cpprb, config, fill, str(tmp_path))
    rb.save_transitions(str(tmp_path / "own"), safe=mode == "safe")
    data = read_transitions(tmp_path / "own.npz")
    laber_file = write_transitions(tmp_path / "laber", data.fields, **laber_writer_kwargs(config, mode, data))
    assert laber_file == str(tmp_path / "laber.npz")
    assert same(read_transitions(laber_file).fields, data.fields)
    cls_name = mf.CONFIGS[config][0]
    for cls in {cls_name, "PrioritizedReplayBuffer"}:
        for size in (mf.FILLS[fill], 32):
            loaded = []
            for source in (str(tmp_path / "own.npz"), laber_file):
                target = getattr(cpprb, cls)(size, mf.env_dict(config), **cpprb_kwargs(config))
                target.load_transitions(source)
                loaded.append(target.get_all_transitions())
            assert same(*loaded), (cls, size)


def test_cpprb_refuses_an_nstep_mismatch_of_laber_files(tmp_path: Path) -> None:
    cpprb = cpprb_or_skip()
    nstep_file = write_transitions(tmp_path / "n", flat_fields(), nstep=True)
    plain = cpprb.ReplayBuffer(8, {"obs": {"shape": 3}, "act": {}, "next_obs": {"shape": 3}})
    with pytest.raises(ValueError, match="Nstep"):
        plain.load_transitions(nstep_file)


def test_cpprb_ignores_fields_it_does_not_have(tmp_path: Path) -> None:
    """laber's N-step files may carry ``discount`` (gamma**k per row): cpprb's buffers (plain, N-step, PER) load
    them and ignore it, as they ignore any key of ``data`` they do not store."""
    cpprb = cpprb_or_skip()
    fields = {**flat_fields(), "discount": np.full((5, 1), 0.25, np.float32)}
    path = write_transitions(tmp_path / "d", fields, nstep=True)
    env = {"obs": {"shape": 3}, "act": {}, "next_obs": {"shape": 3}, "done": {}, "rew": {}}
    for cls in (cpprb.ReplayBuffer, cpprb.PrioritizedReplayBuffer):
        rb = cls(8, {k: v for k, v in env.items() if k in fields}, Nstep={"size": 3, "next": "next_obs"})
        rb.load_transitions(path)
        assert list(rb.get_all_transitions()) == ["obs", "act", "next_obs"] and rb.get_stored_size() == 5


def test_cpprb_opens_the_name_it_is_given(tmp_path: Path) -> None:
    cpprb = cpprb_or_skip()
    write_transitions(tmp_path / "run", flat_fields())
    rb = cpprb.ReplayBuffer(8, {"obs": {"shape": 3}, "act": {}, "next_obs": {"shape": 3}})
    with pytest.raises(FileNotFoundError):
        rb.load_transitions(str(tmp_path / "run"))
    with pytest.raises(FileNotFoundError):
        read_transitions(tmp_path / "run")
    rb.load_transitions(str(tmp_path / "run.npz"))
    assert rb.get_stored_size() == 5


def random_scenario(cpprb: Any, seed: int, workdir: str) -> Any:
    """A random cpprb buffer: any config, size 3 to 11, up to 5 episodes of 1 to 7 steps added in batches of at
    most the buffer size (cpprb cannot add more at once), ended or not, terminal or not."""
    rng = np.random.default_rng(seed)
    config = list(mf.CONFIGS)[seed % len(mf.CONFIGS)]
    cls_name, kind, kwargs = mf.CONFIGS[config]
    kwargs = dict(kwargs)
    if kwargs.pop("mmap", False):
        kwargs["mmap_prefix"] = os.path.join(workdir, f"mmap{seed}")
    size = int(rng.integers(3, 12))
    rb = getattr(cpprb, cls_name)(size, mf.env_dict(config), **kwargs)
    for e in range(int(rng.integers(1, 6))):
        length, terminal = int(rng.integers(1, 8)), bool(rng.integers(2))
        steps = [
            {
                "obs": mf.observation(kind, e, t),
                "act": t % 4,
                "rew": float(t),
                "next_obs": mf.observation(kind, e, t + 1),
                "done": float(terminal and t == length - 1),
            }
            for t in range(length)
        ]
        i = 0
        while i < length:
            k = int(rng.integers(1, min(size, length - i) + 1))
            batch = {key: np.stack([np.asarray(s[key]) for s in steps[i : i + k]]) for key in steps[0]}
            if cls_name == "PrioritizedReplayBuffer":
                batch["priorities"] = rng.random(k) + 0.1
            rb.add(**batch)
            i += k
        if rng.random() < 0.8:
            rb.on_episode_end()
    return rb


@pytest.mark.parametrize("block", range(4))
def test_random_cpprb_buffers_read_and_write_back(block: int, tmp_path: Path) -> None:
    cpprb = cpprb_or_skip()
    for seed in range(block * 50, block * 50 + 50):
        rb = random_scenario(cpprb, seed, str(tmp_path))
        config = list(mf.CONFIGS)[seed % len(mf.CONFIGS)]
        for mode in ("safe", "unsafe"):
            own = tmp_path / f"{seed}-{mode}"
            rb.save_transitions(str(own), safe=mode == "safe")
            data = read_transitions(f"{own}.npz")
            assert same(data.fields, rb.get_all_transitions()), (seed, mode)
            written = write_transitions(
                tmp_path / f"l{seed}-{mode}", data.fields, **laber_writer_kwargs(config, mode, data)
            )
            loaded = []
            for source in (f"{own}.npz", written):
                target = getattr(cpprb, mf.CONFIGS[config][0])(32, mf.env_dict(config), **cpprb_kwargs(config))
                target.load_transitions(source)
                loaded.append(target.get_all_transitions())
            assert same(*loaded), (seed, mode)
