"""plan/plot.py: the memory plan drawn as a PNG, written atomically, and one clear line without matplotlib."""
from __future__ import annotations

import sys

import pytest

from clawdbot.converter import ModelConverter
from clawdbot.errors import ClawError
from clawdbot.plan.memory import plan_memory
from clawdbot.plan.plot import _boxes, plot_plan
from clawdbot.tools import zoo

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def plan():
    # squeezenet has tensors, in-place results, a view and kernel scratch: every kind of box but subgraphs.
    return plan_memory(ModelConverter().convert(zoo.build("squeezenet1_1")).graph)


def test_the_plot_is_a_png_matplotlib_reads_back(plan, tmp_path):
    image = pytest.importorskip("matplotlib.image")
    out = plot_plan(plan, tmp_path / "arena.png", "squeezenet1_1")
    assert out == tmp_path / "arena.png"
    data = out.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > 0
    pixels = image.imread(out)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert [p.name for p in tmp_path.iterdir()] == ["arena.png"], "no temp file left behind"


def test_each_buffer_is_a_box_from_its_first_step_to_after_its_last(plan):
    boxes = _boxes(plan)
    assert boxes["scratch"] and boxes["tensor"]
    drawn = {(x0, x1, off, size) for kind in boxes.values() for x0, x1, off, size in kind}
    want = {(b.first, b.last + 1, plan.arena.offsets[b.name], b.size) for b in plan.buffers if b.size}
    assert drawn == want
    assert all(off + size <= plan.arena_bytes for _, _, off, size in drawn)


def test_without_matplotlib_one_line_names_the_extra(plan, tmp_path, monkeypatch):
    for name in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes the import fail
    with pytest.raises(ClawError) as e:
        plot_plan(plan, tmp_path / "arena.png", "m")
    assert "pip install 'clawdbot[plot]'" in str(e.value) and "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())


def test_an_unwritable_destination_is_a_clear_error_and_leaves_nothing(plan, tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(ClawError, match="cannot write .*missing.*arena.png: No such file or directory"):
        plot_plan(plan, tmp_path / "missing" / "arena.png", "m")
    (tmp_path / "dir.png").mkdir()
    with pytest.raises(ClawError, match="cannot write .*dir.png"):
        plot_plan(plan, tmp_path / "dir.png", "m")
    assert [p.name for p in tmp_path.iterdir()] == ["dir.png"], "no temp file left behind"
