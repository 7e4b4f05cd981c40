"""Driving a JupyterLab notebook in a Playwright page: open it, run all cells, wait for
the kernel, collect every JavaScript error, and time a widget's redraw in the page.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

# Console messages of type "error" that are known and harmless. Each entry names the
# message and why it is allowed; anything else fails the test. (Empty: JupyterLab 4.6 with
# ipywidgets 8.1, news and update checks off, logs no error while these tests run.)
KNOWN_HARMLESS_ERRORS: tuple[tuple[str, str], ...] = ()

PROMPT_DONE = re.compile(r"^\[\d+\]:?$")


@dataclass
class ConsoleLog:
    """Every console message and uncaught page error of one page."""

    messages: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def check(self) -> None:
        """Fail when the page logged a JavaScript error."""
        assert not self.errors, "JavaScript errors in the page:\n" + "\n".join(self.errors)

    def _on_console(self, msg) -> None:
        self.messages.append((msg.type, msg.text))
        if msg.type == "error":
            for pattern, _why in KNOWN_HARMLESS_ERRORS:
                if re.search(pattern, msg.text):
                    return
            where = msg.location.get("url", "") if msg.location else ""
            self.errors.append(f"console error: {msg.text} ({where})")


def open_notebook(page, url: str, timeout_ms: float = 90_000) -> None:
    """Open a notebook address and wait until its kernel is idle."""
    page.goto(url, timeout=timeout_ms)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
    wait_idle(page, timeout_ms)


def wait_idle(page, timeout_ms: float) -> None:
    """Wait until the notebook has a kernel and that kernel is idle.

    Before its session starts a notebook reads "No Kernel" and idle; Run All at that
    moment would open the "Select Kernel" dialog instead of running.
    """
    page.wait_for_function(
        """() => {
            const name = document.querySelector('.jp-Toolbar-kernelName');
            const state = document.querySelector('.jp-Notebook-ExecutionIndicator');
            return name && state && name.textContent.trim() !== 'No Kernel'
                && state.getAttribute('data-status') === 'idle';
        }""",
        timeout=timeout_ms, polling=200)


def run_all_cells(page, timeout_ms: float = 120_000) -> float:
    """Run > Run All Cells from the menu bar and wait until every code cell has run.

    Returns the seconds it took. Fails with the cell's output when a cell raised.
    """
    t0 = time.monotonic()
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    # Each code cell's prompt goes "[ ]:" -> "[*]:" -> "[n]:". Run All stops at the first
    # cell that raises, which then leaves later prompts empty.
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:?$/.test(
                p.textContent.trim()));
        }""",
        timeout=timeout_ms, polling=250)
    wait_idle(page, timeout_ms)
    tracebacks = page.locator(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]',
        has_text="Traceback")
    if tracebacks.count():
        raise AssertionError("a cell raised:\n" + tracebacks.first.inner_text()[-3000:])
    return time.monotonic() - t0


def unfinished_prompts(page) -> list[str]:
    """The prompts of code cells that have not run (for failure messages)."""
    texts = page.locator(".jp-CodeCell .jp-InputPrompt").all_inner_texts()
    return [t for t in texts if not PROMPT_DONE.match(t.strip())]


# Installed before a control is changed: records when the input event reached the page
# (capture phase, before any widget handler sees it) and, for each watched element, when
# it first differs from its snapshot (a MutationObserver: the time of the DOM update).
# An image's snapshot is its src (ipywidgets gives every new picture a new blob: URL).
_ARM = """([targets, event]) => {
    const state = {start: null, targets: {}};
    window.__medsegRedraw = state;
    for (const [sel, kind] of targets) {
        const el = document.querySelector(sel);
        if (!el) { throw new Error('no element matches ' + sel); }
        const img = () => el.tagName === 'IMG' ? el : el.querySelector('img');
        const snap = () => kind === 'img' ? ((img() || {}).src || '') : el.innerText;
        const t = {before: snap(), after: null, end: null};
        state.targets[sel] = t;
        const obs = new MutationObserver(() => {
            if (t.end !== null || state.start === null) { return; }
            const now = snap();
            if (now !== t.before && now !== '') {
                t.end = performance.now(); t.after = now; obs.disconnect();
            }
        });
        obs.observe(el, {subtree: true, childList: true, characterData: true,
                         attributes: true});
    }
    document.addEventListener(event, () => {
        if (state.start === null) { state.start = performance.now(); }
    }, {capture: true, once: true});
}"""

_ALL_CHANGED = """() => {
    const s = window.__medsegRedraw;
    return s.start !== null && Object.values(s.targets).every(t => t.end !== null);
}"""

_IMAGE_DIGEST = """async (sel) => {
    const el = document.querySelector(sel);
    const img = el && (el.tagName === 'IMG' ? el : el.querySelector('img'));
    if (!img || !img.src) { return ''; }
    const data = await (await fetch(img.src)).arrayBuffer();
    const hash = new Uint8Array(await crypto.subtle.digest('SHA-256', data));
    return [...hash].map(b => b.toString(16).padStart(2, '0')).join('') + ':' + data.byteLength;
}"""


@dataclass
class Redraw:
    """One control change and the DOM updates it caused."""

    before: dict[str, str]  # selector -> text (or image src) before the change
    after: dict[str, str]  # ... after it
    seconds: dict[str, float]  # selector -> seconds from the input event to its update
    wall_seconds: float  # the whole change seen from the test process (with round trips)

    @property
    def last_seconds(self) -> float:
        """Seconds until the last watched element was updated: the whole redraw."""
        return max(self.seconds.values())


def timed_change(page, targets: dict[str, str], event: str, act,
                 timeout_ms: float = 30_000) -> Redraw:
    """Run ``act()`` (which changes a control) and wait until every target has changed.

    Args:
        targets: ``{css selector: "text" | "img"}``: the elements that must update, and
            whether their text or their image changes.
        event: the DOM event the action starts with (``keydown``, ``click``, ``input``);
            the redraw time runs from it.
        act: a callable that performs the change through the page (keyboard, mouse).
    """
    page.evaluate(_ARM, [list(targets.items()), event])
    t0 = time.monotonic()
    act()
    try:
        page.wait_for_function(_ALL_CHANGED, timeout=timeout_ms, polling="raf")
    except Exception as exc:
        state = page.evaluate("() => window.__medsegRedraw")
        raise AssertionError(f"no redraw within {timeout_ms / 1000:.0f} s after the "
                             f"{event}: {state}") from exc
    wall = time.monotonic() - t0
    state = page.evaluate("() => window.__medsegRedraw")
    ts = state["targets"]
    return Redraw(before={k: v["before"] for k, v in ts.items()},
                  after={k: v["after"] for k, v in ts.items()},
                  seconds={k: round((v["end"] - state["start"]) / 1000.0, 4)
                           for k, v in ts.items()},
                  wall_seconds=round(wall, 4))


def image_digest(page, selector: str) -> str:
    """SHA-256 and length of the picture shown by ``selector`` (an img or its parent)."""
    return page.evaluate(_IMAGE_DIGEST, selector)


def screenshot(page, folder: Path, name: str, selector: str | None = None) -> Path:
    """Save a screenshot of the page (or of one element) as ``folder/name.png``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    if selector:
        page.locator(selector).first.screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=False)
    return path
