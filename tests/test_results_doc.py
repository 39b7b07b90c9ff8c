"""The README's campaign tables are what the committed runs give (``make results`` re-makes them)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")  # the runs' configs are the agents' (laber.agents)

PUBLISH = Path(__file__).resolve().parents[1] / "docs" / "results" / "publish.py"


def _publish() -> object:
    spec = importlib.util.spec_from_file_location("publish", PUBLISH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["publish"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_readme_results_block_is_current() -> None:
    publish = _publish()
    assert publish.main(["--check"]) == 0, "README.md's results block is stale: run `make results`"  # type: ignore[attr-defined]


def test_block_covers_every_campaign() -> None:
    publish = _publish()
    block = publish.render()  # type: ignore[attr-defined]
    for campaign in publish.CAMPAIGNS:  # type: ignore[attr-defined]
        assert f"#### {campaign.title}" in block
    assert block.startswith(publish.BEGIN) and block.endswith(publish.END)  # type: ignore[attr-defined]
