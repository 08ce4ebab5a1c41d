"""The README's front page: its headline is REPORT.md's, its backend table the registry's, and
every link in it and in docs/ leads to a file (and a heading) that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from loopvec.backends import BACKENDS
from loopvec.front_page import END, START, headline_block, update_readme, with_headline

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REFERENCE_REPORT = ROOT / "results" / "reference" / "REPORT.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]

REPORT = """# loopvec report

AMD EPYC, 2 cores, host `vm`, run of 2026-11-29. Each cell was timed in several passes. \
Comparisons at 2 threads unless marked.

Run `reference`, code of commit `354eed3`.

## Headline

- **m = 10, n = 10**: fastest is `numba_loops`, 830 ns ±1% per gradient.
- **m = 1,000, n = 100**: fastest is `numba_fused`, 14.9 us ±6% per gradient.

## Figures

- not a headline bullet

## Machine

- cpu: AMD EPYC
- cpu_target: znver5
- simd: avx; avx2; avx512f; fma
"""

BLOCK = """One machine's numbers: AMD EPYC (Zen 5, AVX-512), 2 cores, host `vm`; run `reference` \
of 2026-11-29, code of commit `354eed3`; comparisons at 2 threads.

- **m = 10, n = 10**: fastest is `numba_loops`, 830 ns ±1% per gradient.
- **m = 1,000, n = 100**: fastest is `numba_fused`, 14.9 us ±6% per gradient."""


def test_the_headline_block_is_reports_machine_and_headline_bullets() -> None:
    assert headline_block(REPORT) == BLOCK


def test_the_headline_block_names_an_intel_target_as_it_is() -> None:
    report = REPORT.replace("znver5", "sapphirerapids")
    got = headline_block(report).splitlines()[0]
    assert got.startswith("One machine's numbers: AMD EPYC (target sapphirerapids, AVX-512), ")


def test_a_report_without_a_machine_record_still_names_its_cpu() -> None:
    report = REPORT.split("## Machine", maxsplit=1)[0]
    got = headline_block(report).splitlines()[0]
    assert got.startswith("One machine's numbers: AMD EPYC, 2 cores, host `vm`; run `reference`")


@pytest.mark.parametrize(
    ("report", "message"),
    [
        (REPORT.replace("run of 2026-11-29. ", ""), "machine sentence"),
        (REPORT.replace("- **m", "* **m"), "no bullet lines under '## Headline'"),
    ],
)
def test_a_report_without_its_parts_is_an_error(report: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        headline_block(report)


def test_with_headline_replaces_what_is_between_the_markers() -> None:
    readme = f"# title\n\n{START}\nold numbers\n{END}\n\nrest\n"
    got = with_headline(readme, "new numbers\n")
    assert got == f"# title\n\n{START}\nnew numbers\n{END}\n\nrest\n"


def test_with_headline_is_idempotent() -> None:
    readme = f"{START}\n{END}\n"
    once = with_headline(readme, BLOCK)
    assert with_headline(once, BLOCK) == once


@pytest.mark.parametrize(
    ("readme", "found"),
    [
        ("no markers\n", "found 0 of the first and 0 of the second"),
        (f"{START}\nnumbers\n", "found 1 of the first and 0 of the second"),
        (f"{START}\n{END}\n{START}\n{END}\n", "found 2 of the first and 2 of the second"),
        (f"{END}\nnumbers\n{START}\n", "the second before the first"),
    ],
)
def test_markers_missing_or_out_of_order_are_named(readme: str, found: str) -> None:
    with pytest.raises(ValueError, match=re.escape(found)) as error:
        with_headline(readme, BLOCK)
    assert START in str(error.value)
    assert END in str(error.value)


def test_update_readme_writes_only_a_change(tmp_path: Path) -> None:
    readme, report = tmp_path / "README.md", tmp_path / "REPORT.md"
    readme.write_text(f"# loopvec\n\n{START}\nstale\n{END}\n", encoding="utf-8")
    report.write_text(REPORT, encoding="utf-8")
    assert update_readme(readme, report) is True
    assert readme.read_text(encoding="utf-8") == f"# loopvec\n\n{START}\n{BLOCK}\n{END}\n"
    assert update_readme(readme, report) is False


def test_the_readme_headline_is_the_reference_reports() -> None:
    """What `loopvec report --update-reference` writes; a README edited by hand fails here."""
    readme = README.read_text(encoding="utf-8")
    block = headline_block(REFERENCE_REPORT.read_text(encoding="utf-8"))
    assert with_headline(readme, block) == readme


def _section(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next((k for k in range(start, len(lines)) if lines[k].startswith("## ")), len(lines))
    return lines[start:end]


def test_the_readme_backend_table_is_the_registry() -> None:
    rows = [
        line
        for line in _section(README.read_text(encoding="utf-8"), "## Backends")
        if line.startswith("| `")
    ]
    expected = [f"| `{name}` | {spec.family} | {spec.summary} |" for name, spec in BACKENDS.items()]
    assert rows == expected


# [text](target) and ![alt](target), with an optional "title"; code is not prose.
_LINK = re.compile(r"!?\[[^\]]*\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_CODE = re.compile(r"`[^`\n]*`")


def _prose(text: str) -> str:
    return _CODE.sub("", _FENCE.sub("", text))


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces to '-';
    a repeated heading gets -1, -2, ..."""
    anchors: set[str] = set()
    for heading in re.findall(r"^#+ (.+)$", _FENCE.sub("", page.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchor, k = slug, 0
        while anchor in anchors:
            k += 1
            anchor = f"{slug}-{k}"
        anchors.add(anchor)
    return anchors


def _links(page: Path) -> list[str]:
    return [m["target"] for m in _LINK.finditer(_prose(page.read_text(encoding="utf-8")))]


def test_the_pages_have_links_to_check() -> None:
    assert (ROOT / "docs" / "method.md") in PAGES
    assert "docs/method.md" in _links(README)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not a file here
            continue
        path_part, _, anchor = target.partition("#")
        path = (page.parent / path_part).resolve() if path_part else page
        if not path.is_relative_to(ROOT) or not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
    assert broken == []
