"""The README's headline numbers, taken from the reference run's REPORT.md, never typed by hand.

The README holds them between two markers, each on a line of its own:

    <!-- loopvec:headline -->
    One machine's numbers: AMD EPYC (Zen 5, AVX-512), 2 cores, host `vm`; run `reference` ...
    - **m = 10, n = 10**: fastest is ...
    <!-- /loopvec:headline -->

`headline_block` makes that text from REPORT.md's own: its first paragraph (the machine, the day,
the thread count compared), its provenance line (the run and the code), its Machine section (the
CPU target and SIMD features) and the bullets of its `## Headline` section as they stand.
`with_headline` puts a block between the markers. Both are pure; `update_readme` is the file edge.
"""

from __future__ import annotations

import re
from pathlib import Path

from loopvec.results import write_bytes_atomic

START = "<!-- loopvec:headline -->"
END = "<!-- /loopvec:headline -->"

# "AMD EPYC, 2 cores, host `vm`, run of 2026-11-29. Each cell ..." (report.render_report)
_MACHINE = re.compile(r"^(?P<cpu>[^\n]+?), (?P<rest>[^\n]*?), run of (?P<day>[^\s.]*)\.")
_THREADS = re.compile(r"Comparisons at (?P<threads>\d+) threads")
# "Run `reference`, code of commit `354eed3`." (report.provenance, one run)
_PROVENANCE = re.compile(r"^Run (?P<run>`[^`]+`), code of (?P<code>.+)\.$", re.MULTILINE)
_ZEN = re.compile(r"^znver(?P<generation>\d+)$")


def _section(report_md: str, heading: str) -> list[str]:
    """The lines under `## heading` up to the next heading of that level ([] if none)."""
    lines = report_md.splitlines()
    if heading not in lines:
        return []
    start = lines.index(heading) + 1
    end = next((k for k in range(start, len(lines)) if lines[k].startswith("## ")), len(lines))
    return lines[start:end]


def _machine_entries(report_md: str) -> dict[str, str]:
    """The `- key: value` lines of REPORT.md's Machine section."""
    entries = (line[2:].split(": ", 1) for line in _section(report_md, "## Machine"))
    return {pair[0]: pair[1] for pair in entries if len(pair) == 2}


def _cpu_detail(machine: dict[str, str]) -> str:
    """'Zen 5, AVX-512': the CPU's generation (numba's target) and its widest SIMD."""
    target = machine.get("cpu_target", "")
    simd = set(machine.get("simd", "").split("; "))
    zen = _ZEN.match(target)
    parts = [f"Zen {zen['generation']}" if zen else f"target {target}" if target else ""]
    parts.append("AVX-512" if "avx512f" in simd else "AVX2" if "avx2" in simd else "")
    return ", ".join(part for part in parts if part)


def headline_block(report_md: str) -> str:
    """The text between the README's markers: a line saying whose numbers they are (machine,
    day, run, code, threads), then REPORT.md's headline bullets, all from REPORT.md's text.

    ValueError where REPORT.md has no machine sentence or no headline bullets.
    """
    body = report_md.split("\n\n", 2)
    machine = _MACHINE.match(body[1].strip()) if len(body) > 1 else None
    if machine is None:
        raise ValueError(
            "REPORT.md does not open with its machine sentence ('CPU, N cores, host ..., run of "
            "DAY.') after its title: is it a report of loopvec's?"
        )
    bullets = [line for line in _section(report_md, "## Headline") if line.startswith("- ")]
    if not bullets:
        raise ValueError("REPORT.md has no bullet lines under '## Headline'")
    detail = _cpu_detail(_machine_entries(report_md))
    who = f"{machine['cpu']} ({detail})" if detail else machine["cpu"]
    when = f"run of {machine['day']}"
    if run := _PROVENANCE.search(report_md):
        when = f"run {run['run']} of {machine['day']}, code of {run['code']}"
    threads = _THREADS.search(body[1])
    compared = f"; comparisons at {threads['threads']} threads" if threads else ""
    line = f"One machine's numbers: {who}, {machine['rest']}; {when}{compared}."
    return "\n".join([line, "", *bullets])


def with_headline(readme: str, block: str) -> str:
    """`readme` with `block` between its markers (whatever was there before is replaced).

    ValueError naming the markers unless `readme` has START once, then END once after it.
    """
    starts, ends = readme.count(START), readme.count(END)
    if starts != 1 or ends != 1 or readme.index(END) < readme.index(START):
        found = f"found {starts} of the first and {ends} of the second"
        order = ", the second before the first" if starts == ends == 1 else ""
        raise ValueError(
            f"the README needs the marker {START} once, then {END} once after it, around its "
            f"headline numbers; {found}{order}"
        )
    head = readme[: readme.index(START) + len(START)]
    tail = readme[readme.index(END) :]
    return f"{head}\n{block.strip()}\n{tail}"


def update_readme(readme_path: Path | str, report_md_path: Path | str) -> bool:
    """Write REPORT.md's headline between the README's markers; True if the README changed.
    The README is rewritten atomically, and only where its text changes."""
    readme_path = Path(readme_path)
    readme = readme_path.read_text(encoding="utf-8")
    report_md = Path(report_md_path).read_text(encoding="utf-8")
    updated = with_headline(readme, headline_block(report_md))
    if updated == readme:
        return False
    write_bytes_atomic(readme_path, updated.encode("utf-8"))
    return True
