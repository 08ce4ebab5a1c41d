"""report.html: its numbers are Python's (the same functions as the PNGs and REPORT.md), it is one
self-contained file under the size limit, and it shows the headline and every cell without
JavaScript. What a browser makes of it, tests/test_browser.py checks."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from html.parser import HTMLParser
from importlib import metadata
from pathlib import Path

import pytest
from test_plots import with_peaks

from loopvec import interactive
from loopvec.analysis import at_threads, ratio, winner
from loopvec.cli import main
from loopvec.compare import compare_runs
from loopvec.formatting import format_speedup
from loopvec.interactive import (
    MAX_PAGE_BYTES,
    cell_rows,
    comparison_rows,
    pair_rows,
    render_comparison_page,
    render_page,
    winner_rows,
)
from loopvec.results import load_results
from loopvec.stats import verdict

FIXTURE = Path(__file__).parent / "fixtures" / "results"
RESULTS = load_results([next(FIXTURE.iterdir())])
RECORDS, MACHINE = RESULTS.records, next(iter(RESULTS.machines.values()))
REFERENCE = Path(__file__).parents[1] / "results" / "reference"


class _Page(HTMLParser):
    """What a browser without JavaScript shows: the text outside <script>, the table's rows,
    and every address the page would load."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.rows = 0
        self.addresses: list[str] = []
        self._in_script = False
        self._in_body = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_script = tag == "script"
        self._in_body = self._in_body or tag == "tbody"
        self.rows += tag == "tr" and self._in_body
        self.addresses += [v for k, v in attrs if k in {"src", "href"} and v]

    def handle_endtag(self, tag: str) -> None:
        self._in_script = self._in_script and tag != "script"
        self._in_body = self._in_body and tag != "tbody"

    def handle_data(self, data: str) -> None:
        if not self._in_script:
            self.text.append(data)


def parsed(page: str) -> _Page:
    parser = _Page()
    parser.feed(page)
    return parser


def present(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Rows without their None fields (the page's columns hold None where a row has none)."""
    return [{k: v for k, v in row.items() if v is not None} for row in rows]


def page_data(page: str) -> dict[str, list[dict[str, object]]]:
    """The page's data, back into rows as its script does; None fields left out."""
    blob = re.search(r'id="loopvec-data">(.*?)</script>', page, re.S)
    assert blob is not None
    columns = json.loads(blob.group(1).replace("<\\/", "</"))
    return {
        name: present(
            [dict(zip(fields, row, strict=True)) for row in zip(*fields.values(), strict=True)]
        )
        for name, fields in columns.items()
    }


@pytest.fixture(scope="module")
def page() -> str:
    return render_page(RECORDS, MACHINE, RESULTS.training)


def test_every_speedup_is_plots_ratio_of_the_same_records() -> None:
    rows = pair_rows(RECORDS)
    assert rows
    checked = 0
    for row in rows:
        cells = at_threads(RECORDS, row["threads"], row["dtype"], row["layout"])
        a, b = cells[(row["a"], row["m"], row["n"])], cells[(row["b"], row["m"], row["n"])]
        expected = ratio(b, a)  # time b / time a: how many times faster a is
        if expected is None:
            assert row["verdict"] == "no ratio"
            assert "skipped" in row["text"]  # says why: the fixture's only untimed cells
            continue
        assert row["text"] == format_speedup(expected)
        assert row["speedup"] == pytest.approx(expected.value, rel=1e-5)
        words = {"slower": "a faster", "faster": "b faster", "same": "tie"}
        assert row["verdict"] == words[verdict(expected)]
        checked += 1
    assert checked > 10


def test_pairs_point_at_their_cells() -> None:
    cells = cell_rows(RECORDS)
    for row in pair_rows(RECORDS):
        assert cells[row["ka"]]["backend"] == row["a"]
        assert cells[row["kb"]]["backend"] == row["b"]
        assert (cells[row["ka"]]["m"], cells[row["ka"]]["n"]) == (row["m"], row["n"])


def test_every_winner_is_plots_winner() -> None:
    rows = winner_rows(RECORDS)
    assert rows
    for row in rows:
        won = winner(at_threads(RECORDS, row["threads"]), row["m"], row["n"])
        assert won is not None
        assert row["who"] == won.label
        assert row["winner"] == (won.best.backend if won.decisive else "tie")


def test_two_runs_are_compared_with_the_rules_of_compare() -> None:
    comparisons = compare_runs(RECORDS, RECORDS)
    rows = comparison_rows(comparisons)
    assert len(rows) == sum(r.timed for r in RECORDS)
    assert all(row["verdict"] == "same" and row["change"] == 1.0 for row in rows)
    page = render_comparison_page("A", "B", comparisons, None)
    assert f"{len(rows)} cells compared" in page
    assert page_data(page)["comparisons"] == present(rows)
    assert "different machine states" not in page
    other = [replace(r, machine_fingerprint="other") for r in RECORDS]
    page = render_comparison_page("A", "B", compare_runs(RECORDS, other), None)
    assert "<strong>A and B are different machine states</strong>" in page


def test_the_page_is_one_file_with_the_data_of_every_view(page: str) -> None:
    html = parsed(page)
    assert html.addresses == []  # no script, style or image loaded from anywhere
    assert "<link" not in page
    data = page_data(page)
    assert data["cells"] == present(cell_rows(RECORDS))
    assert data["pairs"] == present(pair_rows(RECORDS))
    assert len(page.encode()) < MAX_PAGE_BYTES
    specs = re.search(r'id="loopvec-specs">(.*?)</script>', page, re.S)
    assert specs is not None
    names = set(json.loads(specs.group(1)))
    assert names == {"speedup", "winners", "time", "bandwidth", "threads", "training"}


def test_without_javascript_the_headline_and_every_cell_show(page: str) -> None:
    html = parsed(page)
    text = "".join(html.text)
    assert "m = 10,000, n = 10: fastest is" in re.sub(r"\s+", " ", text)
    assert html.rows == len(RECORDS) + len(RESULTS.training)  # the cell table, server-rendered
    skipped = next(r for r in RECORDS if r.status == "skipped")
    assert skipped.reason
    assert skipped.reason in text  # why it was skipped, in plain text


def test_the_reference_runs_page_stays_under_the_limit() -> None:
    results = load_results([REFERENCE])
    (machine,) = results.machines.values()
    page = render_page(results.records, machine, results.training)
    assert 1_000_000 < len(page.encode()) <= MAX_PAGE_BYTES


def test_report_writes_the_page_beside_report_md(tmp_path: Path) -> None:
    report = tmp_path / "out" / "REPORT.md"
    assert main(["report", str(FIXTURE), "--out", str(report)]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert page_data(page)["cells"] == present(cell_rows(RECORDS))


def test_report_html_of_two_runs_writes_one_page_of_both(tmp_path: Path) -> None:
    run = next(FIXTURE.iterdir())
    out = tmp_path / "both.html"
    assert main(["report", str(run), str(run), "--html", "--out", str(out)]) == 0
    rows = page_data(out.read_text())["comparisons"]
    assert {row["code"] for row in rows} == {"same"}
    assert not (tmp_path / "REPORT.md").exists()  # --html writes the page alone


def test_a_page_over_the_limit_is_refused_and_nothing_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("loopvec.cli.MAX_PAGE_BYTES", 1000)
    out = tmp_path / "report.html"
    assert main(["report", str(FIXTURE), "--html", "--out", str(out)]) == 2
    assert "above the limit of" in capsys.readouterr().err
    assert not out.exists()


def test_every_script_ends_where_it_should(page: str) -> None:
    """The inlined bundle and data hold no '</script' that would end their element early."""
    assert "window.vegaEmbed" in interactive.vega_bundle()
    assert page.lower().count("<script") == page.lower().count("</script>") == 4


def test_the_vega_bundle_is_built_once_and_read_back_by_the_next_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import vl_convert  # noqa: PLC0415

    built = interactive.vega_bundle()  # this process's, as vl-convert builds it
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "cache"))
    interactive.vega_bundle.cache_clear()  # as a new process finds it
    assert interactive.vega_bundle() == built
    (kept,) = (tmp_path / "cache" / "vega").iterdir()
    assert kept.name.startswith(f"vl-convert-{metadata.version('vl-convert-python')}-")

    def never(*args: object, **kwargs: object) -> str:
        raise AssertionError("built again")

    monkeypatch.setattr(vl_convert, "javascript_bundle", never)
    interactive.vega_bundle.cache_clear()
    assert interactive.vega_bundle() == built  # read back, not built
    monkeypatch.undo()  # vl-convert's own again, and the tests' cache

    a_file = tmp_path / "a-file"
    a_file.write_text("")
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(a_file / "cache"))  # nothing can be written there
    interactive.vega_bundle.cache_clear()
    try:
        assert interactive.vega_bundle() == built
    finally:
        interactive.vega_bundle.cache_clear()


def test_the_memory_view_and_column_appear_where_memory_was_measured() -> None:
    measured = with_peaks(RECORDS)
    page = render_page(measured, MACHINE, RESULTS.training)
    specs = re.search(r'id="loopvec-specs">(.*?)</script>', page, re.S)
    assert specs is not None
    assert "memory" in json.loads(specs.group(1))
    rows = {row["id"]: row for row in page_data(page)["cells"]}
    for k, record in enumerate(measured):
        assert rows[k].get("peak_bytes") == record.call_bytes
    assert "peak bytes of a call" in page  # the table's column, shown without JavaScript too
