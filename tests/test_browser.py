"""report.html in a real browser: headless Chromium (the system's, driven by Playwright) opens the
file from disk with every request but the file blocked, and reads what a reader would see.

Skipped, saying why, on a machine without Chromium: `apt-get install chromium` (.ci/run does, as
root on Debian). Never `playwright install`: it downloads a browser build, which fails offline.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import numpy as np
import pytest
from matplotlib.image import imread
from test_plots import with_peaks

from loopvec.analysis import at_threads, ratio, winner
from loopvec.compare import compare_runs
from loopvec.formatting import format_speedup
from loopvec.interactive import MAX_PAGE_BYTES, render_comparison_page, render_page
from loopvec.results import load_results

CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser"))), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium on this machine: the browser tests drive the system's "
    "(apt-get install chromium; never `playwright install`, which downloads one)",
)
sync_api = pytest.importorskip("playwright.sync_api", reason="the [test] extra's playwright")

#: Flags of a headless Chromium on a machine with a closed network: no background requests.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
FIXTURE = next((Path(__file__).parent / "fixtures" / "results").iterdir())
RESULTS = load_results([FIXTURE])
RECORDS, MACHINE = RESULTS.records, next(iter(RESULTS.machines.values()))
REFERENCE = Path(__file__).parents[1] / "results" / "reference"
VIEWS = ["speedup", "winners", "time", "bandwidth", "memory", "threads", "training", "cells"]


@dataclass
class Opened:
    """A page and what it did: console errors and warnings, requests other than the file."""

    page: sync_api.Page
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def wait_for(self, view: str) -> None:
        self.page.wait_for_selector(f"body[data-ready='{view}']", timeout=30_000)

    def show(self, view: str) -> None:
        self.page.click(f"nav button[data-view='{view}']")
        self.wait_for(view)

    def select(self, **values: object) -> None:
        section = self.page.locator("section.view.active")
        for name, value in values.items():
            section.locator(f"select[data-param='{name}']").select_option(str(value))
        self.page.wait_for_function(  # the hash follows the last selection
            f"location.hash.includes('{name}={value}')"
        )
        self.page.wait_for_timeout(200)  # Vega redraws asynchronously

    def hover(self, mark: sync_api.Locator) -> dict[str, str]:
        """The tooltip of a mark, as {key: value}."""
        self.page.mouse.move(0, 0)
        mark.hover(force=True)
        tooltip = self.page.locator("#vg-tooltip-element.visible")
        tooltip.wait_for(timeout=5000)
        keys = tooltip.locator("td.key").all_inner_texts()
        values = tooltip.locator("td.value").all_inner_texts()
        return {k.rstrip(":"): v for k, v in zip(keys, values, strict=True)}

    def hash_state(self) -> dict[str, str]:
        state = parse_qs(self.page.evaluate("location.hash").lstrip("#"))
        return {k: v[0] for k, v in state.items()}


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("page") / "report.html"
    # with made-up peaks: the fixture run was timed before memory was measured
    path.write_text(render_page(with_peaks(RECORDS), MACHINE, RESULTS.training), encoding="utf-8")
    return path


def open_page(
    browser: sync_api.Browser, path: Path, fragment: str = "", javascript: bool = True
) -> Iterator[Opened]:
    context = browser.new_context(
        java_script_enabled=javascript, viewport={"width": 1400, "height": 1000}
    )
    page = context.new_page()
    opened = Opened(page)
    page.on("console", lambda m: opened.console.append(f"{m.type}: {m.text}")
            if m.type in {"error", "warning"} else None)  # fmt: skip
    page.on("pageerror", lambda error: opened.console.append(f"page error: {error}"))
    url = path.as_uri()

    def only_the_file(route: sync_api.Route) -> None:
        if route.request.url.split("#")[0] == url:
            route.continue_()
        else:
            opened.requests.append(route.request.url)
            route.abort()

    context.route("**/*", only_the_file)
    page.on(
        "request", lambda r: None if r.url.split("#")[0] == url else opened.requests.append(r.url)
    )
    page.goto(url + (f"#{fragment}" if fragment else ""))
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture
def opened(browser: sync_api.Browser, page_file: Path) -> Iterator[Opened]:
    yield from open_page(browser, page_file)


def is_drawn(png: bytes) -> bool:
    """A screenshot with more than a few colours: something was drawn, not a blank box."""
    image = imread(io.BytesIO(png), format="png")
    pixels = image.reshape(-1, image.shape[-1])
    return len(np.unique(pixels, axis=0)) > 20


def test_every_view_renders_with_no_console_error_and_no_request(
    opened: Opened, tmp_path: Path
) -> None:
    opened.wait_for("speedup")
    for view in VIEWS:
        opened.show(view)
        section = opened.page.locator(f"#view-{view}")
        target = section.locator(".chart") if view != "cells" else section.locator("table")
        shot = target.screenshot(path=tmp_path / f"{view}.png")
        assert is_drawn(shot), f"view {view} is blank"
        if view != "cells":
            marks = section.locator(
                "svg g.role-mark path, svg g.role-mark line, svg g.role-mark text"
            )
            assert marks.count() > 0, f"view {view} has no marks"
        assert opened.hash_state()["view"] == view
    assert opened.console == []
    assert opened.requests == []


def speedup_tooltips(opened: Opened) -> list[dict[str, str]]:
    marks = opened.page.locator("#chart-speedup g.mark-rect.role-mark path")
    return [opened.hover(marks.nth(k)) for k in range(marks.count())]


def test_hovering_two_backends_shows_the_ratios_python_computes(opened: Opened) -> None:
    opened.wait_for("speedup")
    opened.select(a="numpy_vectorized", b="python_loops", threads=1)
    cells = at_threads(RECORDS, 1)
    tooltips = speedup_tooltips(opened)
    assert len(tooltips) == len({(m, n) for (b, m, n) in cells if b == "numpy_vectorized"})
    measured = 0
    for tip in tooltips:
        m, n = int(tip["m"].replace(",", "")), int(tip["n"].replace(",", ""))
        assert (tip["a"], tip["b"], tip["threads"]) == ("numpy_vectorized", "python_loops", "1")
        expected = ratio(cells[("python_loops", m, n)], cells[("numpy_vectorized", m, n)])
        if expected is None:  # python_loops skipped there: the tooltip says why
            assert "python_loops skipped" in tip["a over b (95 % interval)"]
        else:
            assert tip["a over b (95 % interval)"] == format_speedup(expected)
            measured += 1
    assert measured >= 3
    assert opened.console == []


def test_the_winner_of_a_cell_is_the_one_python_names(opened: Opened) -> None:
    opened.wait_for("speedup")
    opened.show("winners")
    marks = opened.page.locator("#chart-winners g.mark-rect.role-mark path")
    cells = at_threads(RECORDS, 2)
    for k in range(marks.count()):
        tip = opened.hover(marks.nth(k))
        won = winner(cells, int(tip["m"].replace(",", "")), int(tip["n"].replace(",", "")))
        assert won is not None
        assert tip["fastest"] == won.label


def test_the_hash_keeps_the_view_and_reopens_it(browser: sync_api.Browser, page_file: Path) -> None:
    fragment = "view=speedup&a=numba_loops&b=numpy_vectorized&threads=1"
    for opened in open_page(browser, page_file, fragment):
        opened.wait_for("speedup")
        selects = opened.page.locator("#view-speedup select")
        chosen = {s.get_attribute("data-param"): s.input_value() for s in selects.all()}
        assert chosen | {"a": "numba_loops", "b": "numpy_vectorized", "threads": "1"} == chosen
        tip = speedup_tooltips(opened)[0]
        assert (tip["a"], tip["b"]) == ("numba_loops", "numpy_vectorized")
        opened.select(b="python_loops")
        assert opened.hash_state()["b"] == "python_loops"
        opened.page.reload()
        opened.wait_for("speedup")
        assert speedup_tooltips(opened)[0]["b"] == "python_loops"
        assert opened.console == []


def test_the_cell_table_sorts_by_time(opened: Opened) -> None:
    opened.wait_for("speedup")
    opened.show("cells")
    opened.page.click("#view-cells th:has-text('median')")
    keys = opened.page.locator("#view-cells tbody tr td:nth-child(8)").evaluate_all(
        "cells => cells.map(c => Number(c.dataset.key ?? c.textContent))"
    )
    assert keys == sorted(keys)
    assert len(keys) == len(RECORDS) + len(RESULTS.training)


def test_without_javascript_the_headline_and_the_table_show(
    browser: sync_api.Browser, page_file: Path
) -> None:
    for opened in open_page(browser, page_file, javascript=False):
        page = opened.page
        assert "fastest is" in page.locator("header").inner_text()
        assert page.locator("#view-cells table").is_visible()
        assert not page.locator("nav").is_visible()  # the views' buttons need the script
        skipped = next(r for r in RECORDS if r.status == "skipped")
        assert skipped.reason
        assert skipped.reason in page.locator("#view-cells").inner_text()
        assert opened.requests == []


def test_two_runs_side_by_side_show_compare_s_ratios(
    browser: sync_api.Browser, tmp_path: Path
) -> None:
    comparisons = compare_runs(RECORDS, RECORDS)
    path = tmp_path / "both.html"
    path.write_text(render_comparison_page("A", "B", comparisons, None), encoding="utf-8")
    for opened in open_page(browser, path):
        opened.wait_for("compare")
        opened.select(backend="numpy_vectorized", threads=2)
        marks = opened.page.locator("#chart-compare g.mark-rect.role-mark path")
        assert marks.count() > 0
        by_cell = {c.cell: c for c in comparisons}
        tip = opened.hover(marks.first)
        m, n = int(tip["m"].replace(",", "")), int(tip["n"].replace(",", ""))
        (comparison,) = [c for c in by_cell.values() if (c.a.backend, c.a.m, c.a.n, c.a.threads)
                         == ("numpy_vectorized", m, n, 2)]  # fmt: skip
        expected = comparison.change
        assert tip["B / A (95 % interval)"] == (
            f"{expected.value:.3f} [{expected.low:.3f}, {expected.high:.3f}]"
        )
        assert tip["verdict"] == comparison.verdict == "same"
        assert opened.console == []
        assert opened.requests == []


def test_the_reference_page_answers_one_thread_float32(
    browser: sync_api.Browser, tmp_path: Path
) -> None:
    """The issue's example: numba_fused against numba_parallel, one thread, float32, on the
    committed reference run; the page is under the size limit."""
    results = load_results([REFERENCE])
    (machine,) = results.machines.values()
    path = tmp_path / "report.html"
    path.write_bytes(render_page(results.records, machine, results.training).encode())
    assert path.stat().st_size <= MAX_PAGE_BYTES
    fragment = "view=speedup&a=numba_fused&b=numba_parallel&threads=1&dtype=float32&layout=C"
    for opened in open_page(browser, path, fragment):
        opened.wait_for("speedup")
        opened.page.locator("#view-speedup").screenshot(path=tmp_path / "reference-speedup.png")
        cells = at_threads(results.records, 1, "float32")
        tips = speedup_tooltips(opened)
        assert len(tips) == 28
        for tip in tips:
            m, n = int(tip["m"].replace(",", "")), int(tip["n"].replace(",", ""))
            fused, parallel = cells[("numba_fused", m, n)], cells[("numba_parallel", m, n)]
            expected = ratio(parallel, fused)
            shown = tip["a over b (95 % interval)"]
            assert shown == (format_speedup(expected) if expected else "; ".join(
                f"{r.backend} {r.status}: {r.reason}" for r in (fused, parallel) if not r.timed
            ))  # fmt: skip
            assert tip["dtype"] == "float32"
        assert opened.console == []
        assert opened.requests == []
