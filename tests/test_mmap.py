"""Memory-mapped buffers (``mmap_prefix=``): resident memory follows the rows touched, not the buffer's size.

Measured at a small scale (a 56 MB buffer of 84x84x4 uint8 stacks): resident memory from ``/proc/self/smaps``
(the pages of the buffer's file mapping only, so the rest of the process does not blur it) and, for the
checkpoint, the peak of Python allocations (``tracemalloc``).
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from laber import ReplayBuffer
from laber.storage import MmapStorage

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/smaps")

ROWS = 2000
ENV = {"obs": {"shape": (84, 84, 4), "dtype": np.uint8}, "act": {"dtype": np.uint8}}
FILE_BYTES = ROWS * (84 * 84 * 4 + 8)  # about 56 MB


def _resident(path: Path) -> int:
    """Resident bytes of this process's mappings of ``path``."""
    total, inside = 0, False
    with open("/proc/self/smaps") as fh:
        for line in fh:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
                inside = len(fields) >= 6 and fields[-1] == str(path)
            elif inside and fields[0] == "Rss:":
                total += int(fields[1]) * 1024
    return total


def _filled(prefix: Path) -> tuple[ReplayBuffer, MmapStorage]:
    storage = MmapStorage(prefix)
    rb = ReplayBuffer(ROWS, ENV, storage=storage, rng=0)
    rng = np.random.default_rng(0)
    for _ in range(0, ROWS, 100):
        rb.add(obs=rng.integers(0, 255, (100, 84, 84, 4), dtype=np.uint8), act=np.arange(100) % 4)
    return rb, storage


def test_resident_memory_follows_the_rows_sampled(tmp_path: Path) -> None:
    rb, storage = _filled(tmp_path / "rb")
    records = storage.path("records")
    assert records.stat().st_size >= FILE_BYTES
    storage.drop_pages()
    assert _resident(records) < FILE_BYTES * 0.02
    touched = set()
    for _ in range(10):
        batch = rb.sample(16)  # 160 of 2000 rows at most
        touched.update(batch["indexes"].tolist())
    resident = _resident(records)
    assert resident < FILE_BYTES * 0.35, (resident, FILE_BYTES)
    # the pages of the rows read, and the kernel's fault-around (up to 64 KiB of cached pages on each side)
    assert resident < len(touched) * (84 * 84 * 4 + 2 * 65536)


def test_a_mapped_buffer_keeps_its_contents_and_its_files(tmp_path: Path) -> None:
    rb, storage = _filled(tmp_path / "rb")
    before = rb.get_all_transitions()
    storage.drop_pages()
    after = rb.get_all_transitions()
    for key, value in before.items():
        np.testing.assert_array_equal(after[key], value)
    rb.close()
    assert storage.path("records").exists()  # laber never deletes the user's files


def test_existing_files_are_never_overwritten(tmp_path: Path) -> None:
    mine = tmp_path / "rb_records.laber.dat"
    mine.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="laber never overwrites a file"):
        ReplayBuffer(8, {"obs": {}}, mmap_prefix=tmp_path / "rb")
    assert mine.read_bytes() == b"precious"
    with pytest.raises(ValueError, match="does not exist"):
        ReplayBuffer(8, {"obs": {}}, mmap_prefix=tmp_path / "missing" / "rb")
    with pytest.raises(ValueError, match="give one of storage, mmap_prefix and device"):
        ReplayBuffer(8, {"obs": {}}, mmap_prefix=tmp_path / "x", storage=MmapStorage(tmp_path / "y"))


def test_a_checkpoint_of_a_mapped_buffer_is_not_copied_through_memory(tmp_path: Path) -> None:
    rb, _ = _filled(tmp_path / "rb")
    tracemalloc.start()
    try:
        rb.save_checkpoint(tmp_path / "ckpt.npz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < FILE_BYTES / 8, peak  # 1 MiB slices, not the buffer
    copy = ReplayBuffer(ROWS, ENV, mmap_prefix=tmp_path / "copy")
    tracemalloc.start()
    try:
        copy.load_checkpoint(tmp_path / "ckpt.npz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < FILE_BYTES / 4, peak  # rows read straight into the mapped storage
    np.testing.assert_array_equal(copy.get_all_transitions()["obs"], rb.get_all_transitions()["obs"])
