"""`loopvec check | plot | report | compare | info | tune | train`: the edge around the pure
modules.

    loopvec check solutions/alice.py:gradient          # is my gradient right? what is wrong?
    loopvec check mypkg.grad:propagate --signature propagate --time   # ... and how fast is it?

    loopvec plot                    # figures of the newest run under results/, into that run
    loopvec report                  # its REPORT.md, with the figures it embeds, and report.html
    loopvec report RUN_A RUN_B --html   # one page: two runs side by side, B/A per cell
    loopvec report results/reference --update-reference   # re-make the reference's report
    loopvec compare RUN_A RUN_B --fail-above 10
    loopvec compare RUN              # a run of two versions (pytest bench --against REV): B/A
    loopvec info                    # this machine's record (what a run saves as machine.json)
    loopvec tune                    # measure this machine's kernel plan again (`loopvec.tuning`)
    loopvec train --dataset breast_cancer --backend numba_fused --iterations 1000 --loop compiled

The benchmark itself runs through pytest (`nox -s bench`), where pytest-benchmark does the timing.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import io
import json
import math
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib as mpl
from matplotlib.figure import Figure
from tqdm import tqdm

from loopvec import tuning
from loopvec.backends import BACKENDS, LOOPS, available_backends, backend_names, plugin_problems
from loopvec.compare import (
    DRIFTED,
    Comparison,
    compare_runs,
    expected_by_chance,
    regressions,
)
from loopvec.datasets import DATASETS, load
from loopvec.drift import Drift, canary_drift
from loopvec.formatting import format_seconds
from loopvec.front_page import update_readme
from loopvec.grid import TRAIN_LEARNING_RATE
from loopvec.interactive import MAX_PAGE_BYTES, render_comparison_page, render_page
from loopvec.interrupts import ctrl_c
from loopvec.machine import machine_record
from loopvec.plots import cost_curve, figures_for
from loopvec.report import render_report
from loopvec.results import (
    AGAINST_FILE,
    PAGE_FILE,
    REPORT_FILE,
    Record,
    Results,
    ResultsWriteError,
    TrainingRecord,
    load_results,
    read_canaries,
    reference_run,
    run_folder,
    write_bytes_atomic,
    write_json_atomic,
)
from loopvec.results import (
    FIGURES as FIGURES_FOLDER,
)
from loopvec.runner import head_to_head
from loopvec.runner.settings import int_list, limit_s, positive
from loopvec.stats import DEFAULT_TIE_BAND
from loopvec.target import SIGNATURES
from loopvec.training import DataLost, TrainingInterrupted, accuracy, train
from loopvec.validation import validate_positive_int, validate_rate

DEFAULT_RESULTS = Path("results")
#: The front page whose headline numbers `report --update-reference` writes (`front_page`).
README_FILE = "README.md"
#: The exit status of a command stopped by Ctrl-C (128 + SIGINT, as a shell reports it).
INTERRUPTED = 130
#: Where report and plot write what they draw from several runs, or from the reference run.
MERGED = DEFAULT_RESULTS / "report"
SCALE_RESULTS = DEFAULT_RESULTS / "scale"


def _load(paths: Sequence[Path]) -> Results:
    """load_results, saying on stderr what it could not read."""
    results = load_results(paths)
    for warning in results.warnings:
        print(f"loopvec: warning: {warning}", file=sys.stderr)
    return results


def _results_for_one_machine(paths: Sequence[Path], machine: str | None) -> Results:
    """The records of `paths` from one machine state: the only one, or the one `machine` names
    (a fingerprint, or its first digits, or a host name)."""
    results = _load(paths or [DEFAULT_RESULTS])
    if not results.records and not results.training:
        raise FileNotFoundError(f"no cells in {', '.join(map(str, paths or [DEFAULT_RESULTS]))}")
    known = results.fingerprints

    def describe(fingerprint: str) -> str:
        return f"{fingerprint} (host {results.machines[fingerprint].get('host')})"

    chosen = [
        fp
        for fp in known
        if machine is None or fp.startswith(machine) or results.machines[fp].get("host") == machine
    ]
    listed = ", ".join(map(describe, known))
    if machine is None and len(chosen) > 1:
        raise ValueError(
            f"the inputs hold {len(known)} machine states and a report is of one: choose one "
            f"with --machine (a fingerprint or a host): {listed}"
        )
    if not chosen:
        raise ValueError(f"no results of machine {machine!r}; machines: {listed}")
    if len(chosen) > 1:
        raise ValueError(f"--machine {machine!r} names {len(chosen)} machine states: {listed}")
    return results.for_machine(chosen[0])


def write_png(figure: Figure, path: Path) -> None:
    """`figure` as PNG at `path`, atomically (no timestamps: same figure, same bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, metadata={"Software": None})
    write_bytes_atomic(path, buffer.getvalue())


def _output_folder(args: argparse.Namespace) -> Path:
    """Where report and plot write by default: into the run they draw, if they draw one run
    (the reference only with --update-reference); else results/report/."""
    runs = {run_folder(path) for path in args.paths or [DEFAULT_RESULTS]}
    (run, *others) = runs
    if run is not None and not others and (args.update_reference or not reference_run(run)):
        return run
    return MERGED


def _check_writable(args: argparse.Namespace, *paths: Path) -> None:
    """The reference run is read-only unless --update-reference says otherwise."""
    for path in paths:
        reference = reference_run(path)
        if reference is not None and not args.update_reference:
            raise ValueError(
                f"{path} is inside {reference}, the committed reference run, which is read-only: "
                "pass --update-reference to rewrite it, or write elsewhere (--out, --figures)"
            )


def render_figures(results: Results, folder: Path) -> dict[str, Path]:
    """Draw every figure the run has (`plots.figures_for`) into `folder` as PNG."""
    (fingerprint,) = results.machines
    machine = results.machines[fingerprint]
    written = {}
    for name, figure in figures_for(results.records, results.training, machine).items():
        written[name] = folder / f"{name}.png"
        write_png(figure, written[name])
    return written


def _plot(args: argparse.Namespace) -> int:
    out = args.out or _output_folder(args) / FIGURES_FOLDER
    _check_writable(args, out)
    results = _results_for_one_machine(args.paths, args.machine)
    for path in render_figures(results, out).values():
        print(f"wrote {path}")
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.html:
        return _page(args)
    out = args.out or _output_folder(args) / REPORT_FILE
    figures_folder = args.figures or out.parent / FIGURES_FOLDER
    page = out.parent / PAGE_FILE
    _check_writable(args, out, figures_folder, page)
    results = _results_for_one_machine(args.paths, args.machine)
    figures = render_figures(results, figures_folder)
    relative = {name: os.path.relpath(path, out.parent) for name, path in figures.items()}
    (machine,) = results.machines.values()
    text = render_report(results.records, machine, relative, results.training)
    write_bytes_atomic(out, text.encode("utf-8"))
    _write_page(page, render_page(results.records, machine, results.training))
    print(f"wrote {out}, {page} and {len(figures)} figures in {figures_folder}")
    if args.update_reference and (reference := reference_run(out)) is not None:
        readme = reference.parent.parent / README_FILE  # the checkout's, beside results/
        try:
            if readme.is_file() and update_readme(readme, out):
                print(f"wrote the reference run's headline into {readme}")
        except ValueError as error:  # not loopvec's front page, or its markers were edited
            print(f"loopvec report: {readme} was left as it was: {error}", file=sys.stderr)
    return 0


def _write_page(path: Path, page: str) -> None:
    data = page.encode("utf-8")
    if len(data) > MAX_PAGE_BYTES:
        raise ValueError(
            f"{path}: the page would be {len(data) / 1e6:.1f} MB, above the limit of "
            f"{MAX_PAGE_BYTES / 1e6:.0f} MB a page mailed or committed may have"
        )
    write_bytes_atomic(path, data)


def _page(args: argparse.Namespace) -> int:
    """--html: report.html alone; of two runs (or machines), the two side by side."""
    if len(args.paths) != 2:
        results = _results_for_one_machine(args.paths, args.machine)
        (machine,) = results.machines.values()
        page = render_page(results.records, machine, results.training)
    else:
        a, b = _load([args.paths[0]]), _load([args.paths[1]])
        comparisons = compare_runs(
            [*a.records, *a.training], [*b.records, *b.training], relative_to=args.relative_to
        )
        if not comparisons:
            raise ValueError(f"no cell was timed in both {args.paths[0]} and {args.paths[1]}")
        page = render_comparison_page(
            _describe(args.paths[0], a), _describe(args.paths[1], b), comparisons, args.relative_to
        )
    out = args.out or _output_folder(args) / PAGE_FILE
    _check_writable(args, out)
    _write_page(out, page)
    print(f"wrote {out}")
    return 0


def _describe(path: Path, results: Results) -> str:
    """'results/a: run vm-...; AMD EPYC (host vm)': a side of a comparison."""
    machines = (f"{m.get('cpu', '?')} (host {m.get('host')})" for m in results.machines.values())
    return f"{path}: run {', '.join(results.runs)}; {', '.join(machines)}"


@dataclasses.dataclass(frozen=True)
class Compared:
    """Two runs (or the two versions of one run) read and compared (`compare_runs`)."""

    a: Results
    b: Results
    comparisons: list[Comparison]
    drifts: dict[str, Drift] | None  # None: two versions of one run, no canary needed
    versions: str | None  # the versions of one run, in words


def compared(
    run_a: Path, run_b: Path | None, band: float, relative_to: str | None = None
) -> Compared:
    """`run_a` against `run_b`, or with `run_b` None the two versions of the run `run_a`
    (`pytest bench --against`), paired pass by pass. Canary warnings go to stderr."""
    against = run_a / AGAINST_FILE
    if run_b is not None and against.is_file():
        raise ValueError(
            f"{run_a} is a run of two versions: compare it alone (loopvec compare {run_a}), or "
            f"name one of its versions ({run_a / 'A'} or {run_a / 'B'})"
        )
    versions = None
    if run_b is None:
        if not against.is_file():
            raise FileNotFoundError(
                f"{run_a} is not a run of two versions (no {AGAINST_FILE}, made by "
                "`pytest bench --against REV`): give two runs to compare"
            )
        if relative_to:
            raise ValueError(
                "--relative-to compares runs of two machines; the versions of one run share one"
            )
        listed = json.loads(against.read_text(encoding="utf-8"))["versions"]
        run_a, run_b = (run_a / v["folder"] for v in listed)
        versions = "; ".join(f"{v['folder']} = {v['label']}" for v in listed)
    a, b = _load([run_a]), _load([run_b])
    drifts = None if versions else _drifts(run_a, run_b, band)
    comparisons = compare_runs(
        [*a.records, *a.training],
        [*b.records, *b.training],
        tie_band=band,
        relative_to=relative_to,
        drifts=drifts,
        interleaved=versions is not None,
    )
    return Compared(a, b, comparisons, drifts, versions)


def _compare(args: argparse.Namespace) -> int:
    band = args.tie_band / 100
    done = compared(args.run_a, args.run_b, band, args.relative_to)
    comparisons = done.comparisons
    if args.json:
        print(json.dumps([c.as_json() for c in comparisons], indent=1))
    else:
        if done.versions:
            print(
                f"{args.run_a}: two versions, their passes alternating (ABBA); B/A pairs pass k "
                f"of each: {done.versions}"
            )
        _print_comparisons(done.a, done.b, comparisons, args.relative_to, band, done.drifts)
    if not comparisons:
        if args.json:  # stdout holds the (empty) JSON alone: the reason goes to stderr
            print(f"loopvec compare: {_nothing_in_common(args, done.a, done.b)}", file=sys.stderr)
        return 1
    if args.fail_above is not None:
        worse = regressions(comparisons, args.fail_above)
        if worse and not args.json:
            print(
                f"{len(worse)} cell(s) slower by more than {args.fail_above:g} % with their "
                "whole 95 % interval (called slower, or not called: the machine drifted)"
            )
        return 1 if worse else 0
    return 0


def _drifts(run_a: Path, run_b: Path, band: float) -> dict[str, Drift]:
    """The canaries' verdicts on two separate runs (`loopvec.drift`), read warnings said."""
    sides = [read_canaries(run_a), read_canaries(run_b)]
    for warning in (w for _, warnings in sides for w in warnings):
        print(f"loopvec: warning: {warning}", file=sys.stderr)
    return canary_drift(sides[0][0], sides[1][0], band)


def _print_comparisons(
    a: Results,
    b: Results,
    comparisons: list[Comparison],
    relative_to: str | None,
    band: float,
    drifts: dict[str, Drift] | None = None,
) -> None:
    for side, results in (("A", a), ("B", b)):
        machines = ", ".join(f"{fp} (host {m.get('host')})" for fp, m in results.machines.items())
        print(f"{side}: run {', '.join(results.runs)}; machine {machines}")
    if relative_to:
        print(f"B/A compares each cell's time relative to {relative_to} in its own run")
    elif a.machines.keys() != b.machines.keys():
        print(
            "A and B are different machine states: B/A compares the machines, not only the code "
            "(--relative-to BACKEND compares their speedups instead)"
        )
    if drifts is not None:
        print(_drift_line(drifts))
    if not comparisons:
        print("no cell was timed in both runs")
        return
    wide = max(7, *(len(c.verdict) for c in comparisons))
    memory = {c.cell: f"{c.memory.words} {c.memory.verdict}" if c.memory else "-"
              for c in comparisons}  # fmt: skip
    roomy = max(len("memory B/A"), *map(len, memory.values()))
    print(
        f"{'cell':58} {'A':>9} {'B':>9} {'B/A [95 % interval]':>24}  {'change':{wide}} "
        f"{'memory B/A':{roomy}} code"
    )
    for c in comparisons:
        print(
            f"{c.cell:58} {format_seconds(c.a.median_s or 0):>9} "
            f"{format_seconds(c.b.median_s or 0):>9} {c.interval:>24}  {c.verdict:{wide}} "
            f"{memory[c.cell]:{roomy}} {'changed' if c.code_changed else 'same'}"
        )
    counts = Counter(c.verdict for c in comparisons)
    drifted = f", {counts[DRIFTED]} not called: the machine drifted" if counts[DRIFTED] else ""
    print(
        f"{len(comparisons)} cells compared: {counts['faster']} faster, {counts['slower']} "
        f"slower, {counts['same']} the same (within the {band:.0%} tie band or its interval)"
        f"{drifted}; were nothing changed, at most {expected_by_chance(len(comparisons)):.1f} "
        "would be called a change by chance"
    )
    if measured := [c.memory for c in comparisons if c.memory]:
        said = Counter(m.verdict for m in measured)
        exact = sum(m.exact for m in measured)
        print(
            f"memory: {len(measured)} cells measured in both: {said['less']} less, "
            f"{said['more']} more, {said['same']} the same; {exact} of them the same bytes at "
            "every measuring call of each run (B/A exact)"
        )


def _drift_line(drifts: dict[str, Drift]) -> str:
    """One line: whether the machine's own speed moved, by the canaries of both runs."""
    if any(d.between is None for d in drifts.values()):
        return (
            "canary: a run has none (timed by an older loopvec): the machine's drift between "
            "the runs is not checked; `pytest bench --against REV` needs none"
        )
    moved = [d for d in drifts.values() if d.moved]
    if not moved:
        steady = ", ".join(d.describe() for d in drifts.values())
        return f"canary: the machine kept its speed ({steady})"
    return (
        f"canary: the machine drifted ({'; '.join(d.describe() for d in moved)}): cells that "
        "follow it are not called changed; time the two versions in one run "
        "(`pytest bench --against REV`) to compare them"
    )


def _nothing_in_common(args: argparse.Namespace, a: Results, b: Results) -> str:
    """Why compare found no cell: what each side holds."""

    def timed(results: Results) -> str:
        cells: list[Record | TrainingRecord] = [*results.records, *results.training]
        backends = sorted({r.backend for r in cells if r.timed})
        return f"{sum(r.timed for r in cells)} timed cells ({', '.join(backends) or 'no backend'})"

    return (
        f"no cell was timed in both runs: {args.run_a} has {timed(a)}, {args.run_b or 'B'} has "
        f"{timed(b)}; a cell is the same backend, m, n, threads, dtype and layout"
    )


def _check(args: argparse.Namespace) -> int:
    """0 if every check passes (and, with --time, the timing was done), 1 if not; a target that
    cannot be loaded is a TargetError (2). The checks print before the timing starts."""
    from loopvec.checks import NEVER_TIMED, check  # noqa: PLC0415
    from loopvec.target import load_target  # noqa: PLC0415

    target = load_target(args.target)
    result = check(target, signature=args.signature)
    print(result, flush=True)
    if not args.time:
        return 0 if result else 1
    if not result:
        print(f"not timed: {NEVER_TIMED}")
        return 1
    try:
        timing = head_to_head.time_against(
            target,
            args.signature,
            sizes=args.sizes,
            n=args.n,
            threads=args.threads,
            passes=args.passes,
            budget_s=args.budget,
        )
    except head_to_head.TimingError as error:
        print(f"not timed: {error}")
        return 1
    print(timing)
    return 0


def _info(args: argparse.Namespace) -> int:
    record = machine_record(measure_bandwidth=not args.no_bandwidth)
    available = available_backends()
    record["backends"] = {
        name: {
            "family": spec.family,
            "summary": spec.summary,
            "available": name in available,
            "origin": spec.origin,
        }
        for name, spec in BACKENDS.items()
    }
    record["plugin_problems"] = plugin_problems()  # entry points that could not be used
    record["kernel_plan"] = tuning.current().as_json()  # measured here on first use
    print(json.dumps(record, indent=1))
    return 0


def _tune(args: argparse.Namespace) -> int:
    state = tuning.tune()
    if args.json:
        print(json.dumps(state.as_json(), indent=1))
    return 0 if state.source == "measured" else 1


def _train(args: argparse.Namespace) -> int:
    # Bad settings fail here, before the warm-up pays for any compilation.
    validate_rate("--learning-rate", args.learning_rate)
    validate_rate("--l2-penalty", args.l2_penalty, allow_zero=True)
    validate_positive_int("--iterations", args.iterations)
    validate_positive_int("--record-every", args.record_every)
    _check_can_write(args.out)
    data = load(args.dataset)
    print(
        f"{data.name}: {data.m:,} examples x {data.n} features; backend {args.backend}, "
        f"learning_rate {args.learning_rate:g}, {args.iterations:,} iterations, {args.loop} loop"
    )
    # One warm-up step (JIT compile or cache load, first use of every pool), timed apart; its
    # rate only has to be harmless.
    start = time.perf_counter()
    train(data.X, data.Y, backend=args.backend, learning_rate=1e-9, iterations=1, loop=args.loop)
    warmup_s = time.perf_counter() - start
    with tqdm(total=args.iterations, unit="it", desc="training", file=sys.stderr) as bar:
        start = time.perf_counter()
        try:
            result = train(
                data.X,
                data.Y,
                backend=args.backend,
                learning_rate=args.learning_rate,
                iterations=args.iterations,
                record_every=args.record_every,
                l2_penalty=args.l2_penalty,
                progress=bar.update,
                loop=args.loop,
            )
            interrupted = False
        except TrainingInterrupted as interrupt:
            result, interrupted = interrupt.result, True
            # The interrupted step's frames (on Dask: its futures) are freed here, a Ctrl-C kept:
            # one landing in a future's __del__ would print a traceback and be lost; this way it
            # stops the writing of the results, in one line (main).
            with ctrl_c(first_at_once=False) as late:
                interrupt.__traceback__ = interrupt.__context__ = None
                gc.collect()
            if late.pressed:
                raise KeyboardInterrupt from None
        train_s = time.perf_counter() - start
    right = accuracy(result.w, result.b, data.X, data.Y)
    stopped = " (interrupted)" if interrupted else ""
    summary = {
        "dataset": data.name,
        "backend": args.backend,
        "loop": args.loop,
        "learning_rate": args.learning_rate,
        "l2_penalty": args.l2_penalty,
        "iterations": result.iterations,
        "interrupted": interrupted,
        "accuracy": right,
        "final_cost": result.final_cost,
        "train_s": train_s,
        "warmup_s": warmup_s,
        "costs": result.costs.tolist(),
        "cost_iterations": result.cost_iterations.tolist(),
        "w": result.w[:, 0].tolist(),
        "b": result.b,
    }
    loop = "" if args.loop == "python" else f"-{args.loop}"
    stem = args.out / f"{data.name}-{args.backend}{loop}"
    title = (
        f"{data.name}, {args.backend} ({args.loop} loop): learning rate {args.learning_rate:g}, "
        f"{result.iterations:,} iterations{stopped}\naccuracy {right:.2%}, "
        f"final cost {result.final_cost:.4g}, {format_seconds(train_s)}"
    )
    write_png(cost_curve(result, title), stem.with_suffix(".png"))
    write_json_atomic(stem.with_suffix(".json"), summary)
    print(
        f"accuracy {right:.2%} ({round(right * data.m)} of {data.m}), "
        f"final cost {result.final_cost:.6g}\n"
        f"time {format_seconds(train_s)} for {result.iterations:,} iterations{stopped} "
        f"({format_seconds(train_s / max(result.iterations, 1))} each, progress bar included); "
        f"a first step (JIT compile or cache load) took {format_seconds(warmup_s)} before it\n"
        f"wrote {stem}.png and {stem}.json"
    )
    return INTERRUPTED if interrupted else 0


def _check_can_write(folder: Path, option: str = "--out") -> None:
    """Write and remove a file in `folder` (made if need be), so that a result is never lost
    to an unwritable `option` after the work is done."""
    probe = folder / ".loopvec-write-check"
    if folder.exists() and not folder.is_dir():
        raise ResultsWriteError(f"{option}: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ResultsWriteError(f"{option}: cannot write into {folder}: {error.strerror}") from None


def _percent(text: str) -> float:
    """A percentage option: a finite number >= 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"expected a finite percentage >= 0; got {text!r}")
    return value


def _scale(args: argparse.Namespace) -> int:
    from loopvec import scale, scale_report  # noqa: PLC0415 (needs the [dask] extra)
    from loopvec.provenance import run_name  # noqa: PLC0415

    out = args.out or SCALE_RESULTS / run_name(machine_record(measure_bandwidth=False), "scale")
    code = 0
    if args.render:
        study = scale.load(out / "scale.json")
    else:
        _check_can_write(out)
        if args.store_folder is not None:
            _check_can_write(args.store_folder, "--store-folder")
        settings = scale.Settings.smoke() if args.smoke else scale.Settings()
        if args.store_folder is not None or args.no_peers:
            settings = dataclasses.replace(
                settings, store_folder=args.store_folder, peers=not args.no_peers
            )
        try:
            study = scale.run(settings, out, args.study or scale.STUDIES)
        except scale.Interrupted as interrupt:  # what was measured is in scale.json
            study, code = interrupt.study, INTERRUPTED
            print(
                f"interrupted: {out / 'scale.json'} keeps the {len(study.records)} records "
                "measured, drawn below; `--render` draws them again",
                file=sys.stderr,
            )
    data = dataclasses.asdict(study)
    write_png(scale_report.figure(data), out / "scale.png")
    write_bytes_atomic(out / "SCALE.md", scale_report.markdown(data).encode())
    print(f"wrote {out / 'scale.json'}, {out / 'scale.png'} and {out / 'SCALE.md'}")
    return code


def _add_check(commands: Any) -> None:
    """`loopvec check TARGET [--signature ...] [--time ...]`."""
    check_command = commands.add_parser(
        "check",
        help="check your gradient function against the exact gradient and the known mistakes; "
        "--time: and time it against the loops, numpy and the fastest backend",
        description="Exit status: 0 if every check passes, 1 if one fails, 2 if the target "
        "cannot be loaded. docs/check.md shows how to read the output.",
    )
    check_command.add_argument(
        "target",
        metavar="TARGET",
        help="FILE.py:FUNCTION (solutions/alice.py:gradient) or MODULE:FUNCTION "
        "(mypkg.grad:gradient)",
    )
    check_command.add_argument(
        "--signature",
        choices=list(SIGNATURES),
        default="gradient",
        help="; ".join(SIGNATURES.values()),
    )
    check_command.add_argument(
        "--time", action="store_true", help="then time it (separate processes, 95 %% intervals)"
    )
    check_command.add_argument(
        "--sizes",
        type=int_list,
        default=list(head_to_head.DEFAULT_SIZES),
        metavar="M,M,...",
        help="with --time: example counts m (default %(default)s)",
    )
    check_command.add_argument(
        "--n", type=positive, default=head_to_head.DEFAULT_N, help="features (default %(default)s)"
    )
    check_command.add_argument(
        "--threads", type=positive, default=1, help="threads for every pool (default %(default)s)"
    )
    check_command.add_argument(
        "--passes",
        type=positive,
        default=head_to_head.DEFAULT_PASSES,
        help="separate processes (default %(default)s)",
    )
    check_command.add_argument(
        "--budget",
        type=limit_s,
        default=head_to_head.DEFAULT_BUDGET_S,
        metavar="SECONDS",
        help="a function whose call takes longer is not timed at that m or above "
        "(default %(default)s)",
    )
    check_command.set_defaults(handler=_check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="loopvec", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def with_inputs(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "paths",
            nargs="*",
            type=Path,
            help="run folders, results folders (their newest run; never the reference, which is "
            "used where named) or pytest-benchmark JSON files, merged (default: the newest run "
            "under results/)",
        )
        command.add_argument(
            "--machine",
            help="the machine to draw when the inputs hold several: a fingerprint (or its first "
            "digits) or a host name",
        )
        command.add_argument(
            "--update-reference",
            action="store_true",
            help="allow writing into the reference run (re-making it); it is read-only otherwise",
        )

    plot = commands.add_parser("plot", help="draw the figures of a run")
    with_inputs(plot)
    plot.add_argument(
        "--out", type=Path, help="default: the run's figures/ (several runs: results/report/)"
    )
    plot.set_defaults(handler=_plot)

    report = commands.add_parser("report", help="write REPORT.md, its figures and report.html")
    with_inputs(report)
    report.add_argument(
        "--out", type=Path, help="default: the run's REPORT.md (several runs: results/report/)"
    )
    report.add_argument("--figures", type=Path, help="default: figures/ beside the report")
    report.add_argument(
        "--html",
        action="store_true",
        help="write report.html only; given two runs, a page of both side by side with B/A",
    )
    report.add_argument(
        "--relative-to",
        choices=backend_names(),
        metavar="BACKEND",
        help="with --html and two runs: compare speedups against BACKEND (across machines)",
    )
    report.set_defaults(handler=_report)

    compare = commands.add_parser("compare", help="B/A per cell of two runs, with intervals")
    compare.add_argument("run_a", type=Path, help="run A (or a run of two versions alone)")
    compare.add_argument("run_b", type=Path, nargs="?", help="run B")
    compare.add_argument(
        "--fail-above",
        type=_percent,
        metavar="PERCENT",
        help="exit 1 where a cell is slower by more than PERCENT with its whole interval",
    )
    compare.add_argument(
        "--tie-band",
        type=_percent,
        default=DEFAULT_TIE_BAND * 100,
        metavar="PERCENT",
        help="changes within this band are the same (default %(default)g)",
    )
    compare.add_argument("--json", action="store_true", help="one JSON object per cell")
    compare.add_argument(
        "--relative-to",
        choices=backend_names(),
        metavar="BACKEND",
        help="compare each cell's speedup against BACKEND in its own run (across machines)",
    )
    compare.set_defaults(handler=_compare)

    _add_check(commands)

    info = commands.add_parser("info", help="print this machine's record and the backends")
    info.add_argument("--no-bandwidth", action="store_true", help="skip the bandwidth measurement")
    info.set_defaults(handler=_info)
    tune = commands.add_parser(
        "tune", help="measure this machine's kernel plan again (block sizes, Fortran strategy)"
    )
    tune.add_argument("--json", action="store_true", help="print the plan as JSON too")
    tune.set_defaults(handler=_tune)
    train_command = commands.add_parser(
        "train", help="train by gradient descent on a dataset; cost curve to results/training/"
    )
    train_command.add_argument("--dataset", choices=list(DATASETS), default="breast_cancer")
    train_command.add_argument("--backend", choices=backend_names(), default="numpy_vectorized")
    train_command.add_argument("--iterations", type=int, default=2000, help="the course's 2000")
    train_command.add_argument(
        "--loop",
        choices=LOOPS,
        default="python",
        help="python: a Python for loop over the steps; compiled: the backend's compiled loop",
    )
    train_command.add_argument("--learning-rate", type=float, default=TRAIN_LEARNING_RATE)
    train_command.add_argument("--record-every", type=int, default=100, help="cost every N steps")
    train_command.add_argument(
        "--l2-penalty", type=float, default=0.0, help="lambda of lambda / (2 m) ||w||^2"
    )
    train_command.add_argument("--out", type=Path, default=DEFAULT_RESULTS / "training")
    train_command.set_defaults(handler=_train)
    scale_command = commands.add_parser(
        "scale",
        help="the Dask study: chunk size, in memory, out of core (to beyond this machine's "
        "memory), training against dask-ml and dask-glm (needs [dask])",
    )
    scale_command.add_argument("--out", type=Path, help="default: results/scale/<machine>-scale")
    scale_command.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    scale_command.add_argument(
        "--study", nargs="+", choices=["chunk_size", "in_memory", "out_of_core", "training"]
    )
    scale_command.add_argument(
        "--store-folder", type=Path, help="where the Zarr stores go (and stay; default: removed)"
    )
    scale_command.add_argument("--no-peers", action="store_true", help="skip dask-ml, dask-glm")
    scale_command.add_argument(
        "--render", action="store_true", help="redraw scale.png and SCALE.md from scale.json"
    )
    scale_command.set_defaults(handler=_scale)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    mpl.use("Agg")  # files only, never a window
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    # OSError takes in ResultsWriteError, ClusterUnavailable and the file system's own errors.
    except (OSError, ValueError, TypeError, ImportError, DataLost) as error:
        print(f"loopvec {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # what finished was written atomically as it finished
        print(f"loopvec {args.command}: interrupted", file=sys.stderr)
        return INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
