"""The course's widgets in a real browser: JupyterLab on a loopback port, driven by
Debian's Chromium through Playwright.

* 03_the_cut: run all cells, move the cut slider with the keyboard, and the byte readout
  shows what ``Split(net, front, back).bytes_per_image(size)`` says for the new cut.
* 01_data_and_sites: change the partition scheme; the plot's picture changes.
* MaskComparer (a scratch notebook with tiny arrays): "next" shows the next image and its
  Dice, computed here with numpy.

Every page fails its test on any JavaScript console error or uncaught page error
(:data:`tests.browser.page.KNOWN_HARMLESS_ERRORS` lists the allowed ones: none). The
screenshots and the redraw times (input event to DOM update, measured in the page) go to
``outputs/screenshots/``. Notebooks run as papermill-parameterised copies with the small
parameters of ``tests/test_notebooks.py``, in a temporary folder.

Chromium comes from Debian (``/usr/bin/chromium``) and Playwright from the ``test`` extras;
``bash .ci/browser-deps`` installs both. A missing browser fails the test, it is not skipped.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from .browser.lab import JupyterLab
from .browser.page import (
    ConsoleLog,
    image_digest,
    open_notebook,
    run_all_cells,
    screenshot,
    timed_change,
)
from .test_notebooks import SMALL

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "outputs" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
OPENED = ("01_data_and_sites", "03_the_cut")  # the course notebooks opened here
INSTALL_HINT = "run `bash .ci/browser-deps` (installs Debian's chromium and playwright)"

pytestmark = pytest.mark.slow


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def timings():
    """Everything measured here; written to outputs/screenshots/redraw_times.json."""
    t0 = time.monotonic()
    record = {"machine": f"{platform.node()} ({os.cpu_count()} CPUs)", "redraws": [],
              "run_all_s": {}}
    yield record
    record["module_wall_s"] = round(time.monotonic() - t0, 1)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "redraw_times.json").write_text(json.dumps(record, indent=2) + "\n")


@pytest.fixture(scope="module")
def playwright_api():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: {INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        pytest.fail(f"the Python package playwright is missing ({exc}): {INSTALL_HINT}")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright_api, timings):
    # Debian's build, never a downloaded one (`playwright install` is not used).
    b = playwright_api.chromium.launch(executable_path=str(CHROMIUM), headless=True)
    timings["chromium"] = b.version
    from importlib.metadata import version
    timings["playwright"] = version("playwright")
    yield b
    b.close()


def _parameterised_copy(src: Path, dst: Path, params: dict) -> None:
    """``src`` with papermill's injected-parameters cell, as papermill would run it."""
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(src))
    if params:
        nb = parameterize_notebook(nb, params, kernel_name="python3", language="python")
    nbformat.write(nb, str(dst))


def _scratch_notebook(path: Path, source: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, str(path))


MASKS_NOTEBOOK = """\
import numpy as np
from medseg_kit.widgets import MaskComparer

arrays = np.load("mask_arrays.npz")
comparer = MaskComparer(arrays["images"], arrays["truths"], {"a": arrays["predictions"]})
comparer"""


# A trusted HTML output runs its script: one console.error and one uncaught exception.
JS_ERROR_NOTEBOOK = """\
from IPython.display import HTML
HTML("<script>console.error('medseg selftest: logged'); "
     "throw new Error('medseg selftest: thrown');</script>")"""


def _mask_arrays(n: int = 4, size: int = 24) -> dict[str, np.ndarray]:
    """Tiny images with square truths and shifted squares as predictions: every image
    has its own Dice."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    truths = np.zeros((n, size, size), dtype=np.int64)
    predictions = np.zeros_like(truths)
    for i in range(n):
        truths[i, 6:16, 6:16] = 1
        predictions[i, 6 + 2 * i:16 + 2 * i, 6:16] = 1
    return {"images": images, "truths": truths, "predictions": predictions}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, timings):
    """JupyterLab serving a temporary copy of notebooks/ (parameterised with SMALL)."""
    tmp = tmp_path_factory.mktemp("browser")
    root = tmp / "notebooks"
    shutil.copytree(ROOT / "notebooks", root,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    for stem in OPENED:
        path = root / f"{stem}.ipynb"
        _parameterised_copy(path, path, SMALL.get(stem, {}))
    np.savez(root / "mask_arrays.npz", **_mask_arrays())
    _scratch_notebook(root / "scratch_mask_comparer.ipynb", MASKS_NOTEBOOK)
    _scratch_notebook(root / "scratch_js_error.ipynb", JS_ERROR_NOTEBOOK)
    data = os.environ.get("MEDSEG_DATA_DIR") or str(tmp / "data")
    server = JupyterLab(root, tmp / "jupyter", env={"MEDSEG_DATA_DIR": data,
                                                     "OMP_NUM_THREADS": "1"})
    server.start()
    timings["lab_start"] = server.attempts
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def notebook_page(browser, lab):
    """A fresh page whose console is watched; the test must end with no JS error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    page.set_default_timeout(60_000)
    console = ConsoleLog()
    console.attach(page)
    try:
        yield page, console
    finally:
        context.close()
    # errors logged after the test's own check (it checks at its end, too)
    console.check()


def _open_and_run(page, lab, timings, notebook: str, workspace: str) -> None:
    t0 = time.monotonic()
    open_notebook(page, lab.lab_url(notebook, workspace))
    opened = time.monotonic() - t0
    ran = run_all_cells(page, timeout_ms=150_000)
    timings["run_all_s"][notebook] = {"open_s": round(opened, 2), "run_all_s": round(ran, 2)}


def _record(timings, widget: str, change: str, redraw) -> None:
    timings["redraws"].append({"widget": widget, "change": change,
                               "seconds": redraw.seconds, "last_s": redraw.last_seconds,
                               "wall_s": redraw.wall_seconds})


# ------------------------------------------------------------------ the tests
def _slider_cut(page) -> tuple[int, int]:
    text = page.locator(".medseg-cut-slider .widget-readout").first.inner_text()
    nums = [int(v) for v in re.findall(r"\d+", text)]
    assert len(nums) == 2, f"cut slider readout {text!r}: expected two stage indices"
    return nums[0], nums[1]


def _notebook_net(stem: str):
    """The network and image size that notebook ``stem`` builds, from its parameters cell
    and the small parameters it runs with here."""
    from medseg_kit import course
    from medseg_kit.federated.run import resolve_data
    from medseg_kit.models import create_model

    nb = nbformat.read(str(ROOT / "notebooks" / f"{stem}.ipynb"), as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    params: dict = {}
    exec(cell.source, params)  # the project's own parameters cell
    params.update(SMALL.get(stem, {}))
    data = resolve_data(course.config(size=params["SIZE"], n_images=params["N_IMAGES"]),
                        progress=False)
    net = create_model(params["MODEL"], in_channels=data.in_channels,
                       num_classes=data.model_classes, width=params["WIDTH"])
    return net, params["SIZE"]


def test_cut_slider_moves_the_byte_readout(notebook_page, lab, timings, monkeypatch):
    from medseg_kit.split import Split

    page, console = notebook_page
    _open_and_run(page, lab, timings, "03_the_cut.ipynb", "cut")
    explorer = ".medseg-cut-explorer"
    readout = f"{explorer} .medseg-cut-readout"
    page.locator(explorer).first.scroll_into_view_if_needed()
    screenshot(page, SCREENSHOTS, "03_cut_explorer_start", explorer)

    monkeypatch.setenv("MEDSEG_DATA_DIR", lab.extra_env["MEDSEG_DATA_DIR"])
    net, size = _notebook_net("03_the_cut")
    moves = [("lower", "ArrowRight", "front + 1"), ("upper", "ArrowLeft", "back - 1")]
    for handle, key, change in moves:
        front, back = _slider_cut(page)
        # the readout shows the slider's cut before we move it (no redraw still on its way)
        page.locator(readout).filter(has_text=f"cut ({front}, {back})").first.wait_for()
        new = (front + 1, back) if handle == "lower" else (front, back - 1)
        old_split, new_split = Split(net, front, back), Split(net, *new)
        old_bytes, new_bytes = (s.bytes_per_image(size) for s in (old_split, new_split))
        assert (old_bytes["up"], old_bytes["down"]) != (new_bytes["up"], new_bytes["down"]), \
            f"cuts {(front, back)} and {new} send the same bytes: this move tests nothing"
        targets = {readout: "text", f"{explorer} .medseg-cut-diagram": "img"}
        if old_split.up != new_split.up:  # what the server sees changes too
            targets[f"{explorer} .medseg-cut-smashed"] = "img"
        page.locator(f"{explorer} .medseg-cut-slider .noUi-handle-{handle}").first.focus()
        redraw = timed_change(page, targets, "keydown", lambda k=key: page.keyboard.press(k))
        _record(timings, "CutExplorer", f"{change}: {(front, back)} -> {new}", redraw)
        assert _slider_cut(page) == new
        text = page.locator(readout).first.inner_text()
        for want in (f"cut ({new[0]}, {new[1]})", f"({new_bytes['up']:,} B)",
                     f"({new_bytes['down']:,} B)"):
            assert want in text, (f"after moving the cut to {new}, the readout lacks {want!r}"
                                  f" (Split says {new_bytes}):\n{text}")
        screenshot(page, SCREENSHOTS, f"03_cut_explorer_{new[0]}_{new[1]}", explorer)
    screenshot(page, SCREENSHOTS, "03_page")
    console.check()


def test_site_scheme_redraws_the_plot(notebook_page, lab, timings):
    page, console = notebook_page
    _open_and_run(page, lab, timings, "01_data_and_sites.ipynb", "sites")
    explorer = ".medseg-site-explorer"
    plot = f"{explorer} .medseg-site-plot"
    page.locator(explorer).first.scroll_into_view_if_needed()
    screenshot(page, SCREENSHOTS, "01_site_explorer_start", explorer)
    select = page.locator(f"{explorer} .medseg-site-scheme select").first
    options = select.locator("option").all_inner_texts()
    for scheme in [o for o in options if o != select.input_value()][:2]:
        before = image_digest(page, plot)
        assert before, "the site plot shows no picture"
        redraw = timed_change(page, {plot: "img"}, "input",
                              lambda s=scheme: select.select_option(s))
        _record(timings, "SiteExplorer", f"scheme -> {scheme}", redraw)
        after = image_digest(page, plot)
        assert after and after != before, f"scheme {scheme}: the plot's picture is unchanged"
        screenshot(page, SCREENSHOTS, f"01_site_explorer_{scheme}", explorer)
    console.check()


def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    inter = np.logical_and(pred == 1, truth == 1).sum()
    return float(2 * inter / ((pred == 1).sum() + (truth == 1).sum()))


def test_mask_comparer_next_shows_the_next_image(notebook_page, lab, timings):
    page, console = notebook_page
    _open_and_run(page, lab, timings, "scratch_mask_comparer.ipynb", "masks")
    comparer = ".medseg-mask-comparer"
    readout = f"{comparer} .medseg-mask-readout"
    page.locator(comparer).first.scroll_into_view_if_needed()
    screenshot(page, SCREENSHOTS, "mask_comparer_start", comparer)
    arrays = _mask_arrays()
    n = len(arrays["images"])
    for shown in (1, 2):
        button = page.locator(f"{comparer} .medseg-mask-next").first
        redraw = timed_change(page, {readout: "text", f"{comparer} .medseg-mask-picture": "img"},
                              "click", button.click)
        _record(timings, "MaskComparer", f"next -> image {shown + 1}", redraw)
        text = page.locator(readout).first.inner_text()
        dice = _dice(arrays["predictions"][shown], arrays["truths"][shown])
        for want in (f"image {shown + 1} of {n}", f"#{shown}", f"a {dice:.3f}"):
            assert want in text, f"after 'next' the readout lacks {want!r}:\n{text}"
        screenshot(page, SCREENSHOTS, f"mask_comparer_image_{shown}", comparer)
    console.check()


def test_a_javascript_error_fails_the_page(notebook_page, lab, timings):
    """The guard itself: a notebook whose output logs an error and throws is caught."""
    page, console = notebook_page
    _open_and_run(page, lab, timings, "scratch_js_error.ipynb", "jserror")
    page.wait_for_timeout(500)  # let the output's script run
    assert any("console error: medseg selftest: logged" in e for e in console.errors), \
        console.errors
    assert any("page error: medseg selftest: thrown" in e for e in console.errors), \
        console.errors
    with pytest.raises(AssertionError, match="medseg selftest"):
        console.check()
    others = [e for e in console.errors if "medseg selftest" not in e]
    assert not others, "JavaScript errors in the page:\n" + "\n".join(others)
    console.errors.clear()  # the two injected errors were expected
