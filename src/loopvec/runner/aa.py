"""How often does a comparison call a change where there is none? The A/A study of `nox -s aa`.

    python -m loopvec.runner.aa [--grid quick] [--repeat 3] [--out results/aa]

From a git worktree of HEAD (the checkout's committed code, on PYTHONPATH), each repetition:

1. **separate runs**: the grid timed twice, one run after the other, into two run folders, then
   compared as `loopvec compare A B` compares them (canaries included);
2. **one interleaved run**: `pytest bench --against HEAD`, the same code as two versions, passes
   alternating (ABBA), compared as `loopvec compare RUN` does.

Every run also times a planted backend (`bench/planted.py`): in the second run of the separate
pair, and in the worktree's version of the interleaved run, it does 11 % more work (REPEATS 10
against 9). Its cells are left out of the A/A share and reported alone: a true 10 % slowdown,
which both modes must call slower. Prints, per repetition and mode, the share of cells called
changed, how many chance alone would call, the canaries' drift, and the planted cells found;
writes summary.json in the study's folder.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopvec.compare import DRIFTED, Comparison, compare_runs, expected_by_chance
from loopvec.drift import Drift, canary_drift
from loopvec.grid import GRIDS
from loopvec.machine import machine_record
from loopvec.results import AGAINST_FILE, load_results, read_canaries, write_json_atomic
from loopvec.runner.versions import checkout_root, git, resolve
from loopvec.stats import DEFAULT_TIE_BAND

PLANTED = "planted"
PLANTED_FILE = Path("bench") / "planted.py"
#: REPEATS of the planted backend: the baseline, and the version with 11 % more work.
BASELINE_REPEATS, SLOWER_REPEATS = 9, 10
#: The targets the study is held to (issue 29): shares of cells called changed at most.
SEPARATE_TARGET, INTERLEAVED_TARGET = 0.05, 0.02


@dataclass(frozen=True)
class ModeResult:
    """One comparison of the study: the A/A cells, the planted cells, the canaries."""

    mode: str  # separate | interleaved
    comparisons: list[Comparison]
    drifts: dict[str, Drift] | None

    @property
    def same_code(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.a.backend != PLANTED]

    @property
    def planted(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.a.backend == PLANTED]

    def called(self) -> list[Comparison]:
        return [c for c in self.same_code if c.verdict in ("faster", "slower")]

    def share_called(self) -> float:
        return len(self.called()) / max(len(self.same_code), 1)

    def found(self) -> list[Comparison]:
        return [c for c in self.planted if c.verdict == "slower"]

    def summary(self) -> dict[str, Any]:
        drifted = [c for c in self.same_code if c.verdict == DRIFTED]
        moved = [d.describe() for d in (self.drifts or {}).values() if d.moved]
        return {
            "mode": self.mode,
            "cells": len(self.same_code),
            "called_changed": len(self.called()),
            "share_called": self.share_called(),
            "chance_at_most": expected_by_chance(len(self.same_code)),
            "machine_drifted_cells": len(drifted),
            "canary_moved": moved,
            "canary": [d.describe() for d in (self.drifts or {}).values()],
            "called": [c.as_json() for c in self.called()],
            "planted_cells": len(self.planted),
            "planted_found": len(self.found()),
            "planted": [c.as_json() for c in self.planted],
        }

    def lines(self) -> list[str]:
        s = self.summary()
        target = SEPARATE_TARGET if self.mode == "separate" else INTERLEAVED_TARGET
        words = [
            f"{self.mode:11}: {s['cells']} cells, {s['called_changed']} called changed "
            f"({s['share_called']:.1%}; target at most {target:.0%}), chance alone at most "
            f"{s['chance_at_most']:.1f}"
            + (
                f"; {s['machine_drifted_cells']} not called: machine drifted"
                if s["machine_drifted_cells"]
                else ""
            )
        ]
        if self.drifts is not None:
            words.append(f"{'':13}canary: {'; '.join(s['canary'])}")
        ratios = sorted(c.ratio for c in self.planted)
        spread = f", B/A {ratios[0]:.3f} to {ratios[-1]:.3f}" if ratios else ""
        words.append(
            f"{'':13}planted +11 % work: {s['planted_found']} of {s['planted_cells']} cells "
            f"called slower{spread}"
        )
        return words


class BenchFailed(RuntimeError):
    """A run of the study did not finish; its log says why."""


def _bench(checkout: Path, arguments: Sequence[str], log: Path) -> None:
    """`python -m pytest bench ARGUMENTS` in `checkout`, its src first on the path (a run of
    two versions sets each version's own), its output into `log`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(checkout / "src"), env.get("PYTHONPATH")])
    )
    command = [sys.executable, "-m", "pytest", "bench", "-p", "no:cacheprovider", *arguments]
    print(f"loopvec aa: {' '.join(command[2:])} (log: {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as output:
        done = subprocess.run(
            command, cwd=checkout, env=env, check=False, stdout=output, stderr=subprocess.STDOUT
        )
    if done.returncode != 0:
        raise BenchFailed(f"exit {done.returncode}: see {log}")
    print(f"loopvec aa: done in {time.perf_counter() - start:.0f} s", flush=True)


def _plant(checkout: Path, repeats: int) -> None:
    path = checkout / PLANTED_FILE
    text = path.read_text(encoding="utf-8")
    lines = [
        f"REPEATS = {repeats}" if line.startswith("REPEATS = ") else line
        for line in text.splitlines()
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def separate(folder: Path, band: float) -> ModeResult:
    a, b = folder / "separate-1", folder / "separate-2"
    ra, rb = load_results([a]), load_results([b])
    drifts = canary_drift(read_canaries(a)[0], read_canaries(b)[0], band)
    comparisons = compare_runs(
        [*ra.records, *ra.training], [*rb.records, *rb.training], tie_band=band, drifts=drifts
    )
    return ModeResult("separate", comparisons, drifts)


def interleaved(folder: Path, band: float) -> ModeResult:
    run = next((folder / "interleaved").glob(f"*/{AGAINST_FILE}")).parent
    ra, rb = load_results([run / "A"]), load_results([run / "B"])
    comparisons = compare_runs(
        [*ra.records, *ra.training], [*rb.records, *rb.training], tie_band=band, interleaved=True
    )
    return ModeResult("interleaved", comparisons, None)


def with_planted(options: Sequence[str]) -> list[str]:
    """`options` with the planted backend added to a --backends list, if one is given."""
    options = list(options)
    for k, option in enumerate(options):
        if option == "--backends" and k + 1 < len(options):
            options[k + 1] += f",{PLANTED}"
        elif option.startswith("--backends="):
            options[k] += f",{PLANTED}"
    return options


@contextmanager
def worktree_of_head(root: Path) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="loopvec-aa-") as scratch:
        path = Path(scratch) / "head"
        git(root, "worktree", "add", "--detach", "--quiet", str(path), resolve(root, "HEAD"))
        try:
            yield path
        finally:
            git(root, "worktree", "remove", "--force", str(path))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loopvec.runner.aa", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--grid", default="quick", choices=list(GRIDS))
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of both modes")
    parser.add_argument("--out", type=Path, default=Path("results") / "aa")
    parser.add_argument("--passes", type=int, default=6, help="passes of each version, interleaved")
    parser.add_argument("bench_options", nargs="*", help="more options for every `pytest bench`")
    args = parser.parse_args(argv)
    root = checkout_root(Path.cwd())
    machine = machine_record(measure_bandwidth=False)
    study = (args.out / f"{dt.datetime.now():%Y%m%d-%H%M%S}").absolute()
    common = [
        *("--grid", args.grid, "--no-bandwidth", f"--backend={PLANTED}={PLANTED_FILE}:gradient"),
        *with_planted(args.bench_options),
    ]
    band = DEFAULT_TIE_BAND
    results: list[dict[str, Any]] = []
    head = resolve(root, "HEAD")
    print(
        f"loopvec aa: HEAD {head[:8]}, {machine['cpu']} ({machine.get('cpu_target')}), "
        f"{machine['logical_cores']} cores; into {study}"
    )
    with worktree_of_head(root) as checkout:
        for repetition in range(1, args.repeat + 1):
            folder = study / f"repetition-{repetition}"
            try:
                for name, repeats, more in (
                    ("separate-1", BASELINE_REPEATS, []),
                    ("separate-2", SLOWER_REPEATS, []),
                    ("interleaved", SLOWER_REPEATS, ["--against=HEAD", f"--passes={args.passes}"]),
                ):
                    _plant(checkout, repeats)
                    run = [*common, *more, f"--results-dir={folder / name}"]
                    _bench(checkout, run, folder / f"{name}.log")
            except BenchFailed as error:
                print(f"loopvec aa: a run failed ({error})", file=sys.stderr)
                return 1
            modes = [separate(folder, band), interleaved(folder, band)]
            print(f"repetition {repetition}:")
            for mode in modes:
                print("\n".join(f"  {line}" for line in mode.lines()))
            results.append({"repetition": repetition, "modes": [m.summary() for m in modes]})
            write_json_atomic(
                study / "summary.json",
                {
                    "commit": head,
                    "machine": machine,
                    "grid": args.grid,
                    "tie_band": band,
                    "repetitions": results,
                },
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
