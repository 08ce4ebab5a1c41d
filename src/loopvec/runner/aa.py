"""How often does a comparison call a change where there is none? The A/A study of `nox -s aa`.

    python -m loopvec.runner.aa [--grid quick] [--repeat 3] [--out results/aa]

From a git worktree of HEAD (the checkout's committed code, on PYTHONPATH), each repetition:

1. **separate runs**: the grid timed twice, one run after the other, into two run folders, then
   compared as `loopvec compare A B` compares them (canaries included);
2. **one interleaved run**: `pytest bench --against HEAD`, the same code as two versions, passes
   alternating (ABBA), compared as `loopvec compare RUN` does.

Every run also times a planted backend (`bench/planted.py`): in the second run of the separate
pair, and in the worktree's version of the interleaved run, it does 11 % more work (REPEATS 10
against 9: B/A = 1.11). Its cells are left out of the A/A share and reported alone: a true 10 %
slowdown, which both modes must call slower (in at least half of its cells, faster in none).
Prints, per repetition and mode, the share of cells called changed, how many chance alone would
call, the canaries' drift, and the planted cells found; writes summary.json in the study's
folder. Options it does not know go to every `pytest bench` (`-- --backends numba_fused`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loopvec.cli import compared
from loopvec.compare import DRIFTED, Comparison, expected_by_chance
from loopvec.drift import Drift
from loopvec.grid import GRIDS
from loopvec.machine import machine_record
from loopvec.results import AGAINST_FILE, write_json_atomic
from loopvec.runner.driver import run_child
from loopvec.runner.versions import DEFAULT_PASSES, checkout_root, resolve, source_first, worktree
from loopvec.stats import DEFAULT_TIE_BAND

#: The planted backend: the lesson's gradient REPEATS times (bench/planted.py).
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

    def met(self) -> bool:
        """The share called is within the mode's target, and the planted slowdown is found:
        called slower in at least half of its cells and faster in none."""
        target = SEPARATE_TARGET if self.mode == "separate" else INTERLEAVED_TARGET
        wrong_way = [c for c in self.planted if c.verdict == "faster"]
        found = 2 * len(self.found()) >= len(self.planted) > 0 and not wrong_way
        return self.share_called() <= target and found

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
    command = [sys.executable, "-m", "pytest", "bench", "-p", "no:cacheprovider", *arguments]
    print(f"loopvec aa: {' '.join(command[2:])} (log: {log})", flush=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as output:
        code = run_child(command, checkout, source_first(checkout, os.environ), output)
    if code != 0:
        raise BenchFailed(f"exit {code}: see {log}")
    print(f"loopvec aa: done in {time.perf_counter() - start:.0f} s", flush=True)


def _plant(checkout: Path, repeats: int) -> None:
    """Set the planted backend's REPEATS in `checkout`."""
    path = checkout / PLANTED_FILE
    lines = path.read_text(encoding="utf-8").splitlines()
    lines = [f"REPEATS = {repeats}" if x.startswith("REPEATS = ") else x for x in lines]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def with_planted(options: Sequence[str]) -> list[str]:
    """`options` with the planted backend added to a --backends list, if one is given."""
    options = list(options)
    for k, option in enumerate(options):
        if option == "--backends" and k + 1 < len(options):
            options[k + 1] += f",{PLANTED}"
        elif option.startswith("--backends="):
            options[k] += f",{PLANTED}"
    return options


def repetition(checkout: Path, folder: Path, common: list[str], passes: int) -> list[ModeResult]:
    """Both modes once into `folder`: two separate runs, then one run of two versions."""
    for name, repeats, more in (
        ("separate-1", BASELINE_REPEATS, []),
        ("separate-2", SLOWER_REPEATS, []),
        ("interleaved", SLOWER_REPEATS, ["--against=HEAD", f"--passes={passes}"]),
    ):
        _plant(checkout, repeats)
        _bench(checkout, [*common, *more, f"--results-dir={folder / name}"], folder / f"{name}.log")
    run = next((folder / "interleaved").glob(f"*/{AGAINST_FILE}")).parent
    band = DEFAULT_TIE_BAND
    separate = compared(folder / "separate-1", folder / "separate-2", band)
    interleaved = compared(run, None, band)
    return [
        ModeResult("separate", separate.comparisons, separate.drifts),
        ModeResult("interleaved", interleaved.comparisons, None),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """The study; 0 where every repetition met the targets, 1 where one did not, 2 on a failed
    run. Options it does not know are handed to every `pytest bench`."""
    parser = argparse.ArgumentParser(
        prog="python -m loopvec.runner.aa", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--grid", default="quick", choices=list(GRIDS))
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of both modes")
    parser.add_argument("--out", type=Path, default=Path("results") / "aa")
    parser.add_argument("--passes", type=int, default=DEFAULT_PASSES, help="of each version")
    args, bench_options = parser.parse_known_args(argv)
    root = checkout_root(Path.cwd())
    head = resolve(root, "HEAD")
    machine = machine_record(measure_bandwidth=False)
    study = (args.out / f"{dt.datetime.now():%Y%m%d-%H%M%S}").absolute()
    common = [
        *("--grid", args.grid, "--no-bandwidth", f"--backend={PLANTED}={PLANTED_FILE}:gradient"),
        *with_planted(bench_options),
    ]
    print(
        f"loopvec aa: HEAD {head[:8]}, {machine['cpu']} ({machine.get('cpu_target')}), "
        f"{machine['logical_cores']} cores; into {study}"
    )
    results: list[dict[str, Any]] = []
    met = True
    with (
        tempfile.TemporaryDirectory(prefix="loopvec-aa-") as scratch,
        worktree(root, head, Path(scratch) / "head") as checkout,
    ):
        for k in range(1, args.repeat + 1):
            try:
                modes = repetition(checkout, study / f"repetition-{k}", common, args.passes)
            except BenchFailed as error:
                print(f"loopvec aa: a run failed ({error})", file=sys.stderr)
                return 2
            print(f"repetition {k}:")
            for mode in modes:
                print("\n".join(f"  {line}" for line in mode.lines()))
            met = met and all(mode.met() for mode in modes)
            results.append({"repetition": k, "modes": [m.summary() for m in modes]})
            summary = {"commit": head, "machine": machine, "grid": args.grid}
            write_json_atomic(study / "summary.json", {**summary, "repetitions": results})
    print(f"loopvec aa: targets {'met' if met else 'NOT met'}; summary in {study / 'summary.json'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
