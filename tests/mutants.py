"""Our own mutation check: realistic bugs, put into a copy of the package one at a time, each of
which the tests must catch. Run it with `nox -s mutants` (or `python tests/mutants.py [NAME...]`).

Each mutant replaces one exact piece of source (found exactly once, else the list is out of date)
in a copy of src/loopvec and runs the tests that guard that code with the copy first on the path.
It is killed when they fail; it survives when they pass, and then the session fails. A first run
on the unmutated copy proves those tests pass as they stand. The numba cache is keyed by the code
fingerprint (`loopvec.backends._jit`), so a mutated kernel is always compiled afresh.

Not part of CI's tests: it compiles the kernels once per kernel mutant (34 s each on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "loopvec"
#: Seconds a mutant's tests may run: one that hangs is killed by the timeout.
TIMEOUT_S = 900

KERNELS = ("tests/test_kernels.py",)
EXP = ("tests/test_sigmoid.py",)
STATS = ("tests/test_stats.py", "tests/test_compare.py")
COMPARE = ("tests/test_compare.py",)
RUNNER = ("tests/test_runner.py",)
CHECK = ("tests/test_check.py",)
DRIFT = ("tests/test_drift.py",)
TUNING = ("tests/test_tuning.py",)
MEMORY = ("tests/test_memory.py", "tests/test_runner.py", "tests/test_compare.py")


@dataclass(frozen=True)
class Mutant:
    """One bug: in `path` (under src/loopvec), `before` (found exactly once) becomes `after`."""

    name: str
    path: str
    before: str
    after: str
    tests: tuple[str, ...]


MUTANTS = [
    # The compiled kernels
    Mutant(
        "fused block loop drops the last partial block",
        "backends/_blocked.py",
        "for start in range(lo, hi, block):\n        size = min(block, hi - start)\n"
        "        if transpose",  # the columns' loop (the Lanes walk has one of its own)
        "for start in range(lo, hi - (hi - lo) % block, block):\n        size = block\n"
        "        if transpose",
        KERNELS,
    ),
    Mutant(
        "C-order block loop drops the last partial block",
        "backends/_blocked.py",
        "for start in range(lo, hi, block):\n        size = min(block, hi - start)\n"
        "        _z_rows(w, b, X",
        "for start in range(lo, hi - (hi - lo) % block, block):\n        size = block\n"
        "        _z_rows(w, b, X",
        KERNELS,
    ),
    Mutant(
        "X typed C order compiles Fortran order's walks too",
        "backends/_blocked.py",
        '    if X.layout == "C":',
        '    if X.layout == "C order, never":',
        ("tests/test_jit_cache.py",),
    ),
    Mutant(
        "a pass resumes the cell it timed itself, in its next block",
        "runner/session.py",
        "if record is None or cell.cell_id in self.timed_here:",
        "if record is None:",
        RUNNER,
    ),
    Mutant(
        "numba_fused divides by the block size instead of m",
        "backends/numba_fused.py",
        "return finish(dw, db, m)",
        "return finish(dw, db, min(m, 4096))",
        KERNELS,
    ),
    Mutant(
        "numba_parallel loses the leftover m % ranges examples",
        "backends/numba_parallel.py",
        "lo, hi = r * m // ranges, (r + 1) * m // ranges",
        "lo, hi = r * (m // ranges), (r + 1) * (m // ranges)",
        KERNELS,
    ),
    Mutant(
        "numba_parallel adds the first range's dw for every range",
        "backends/numba_parallel.py",
        "dw += partial_dw[r]",
        "dw += partial_dw[0]",
        KERNELS,
    ),
    Mutant(
        "z skips the first row left over after the 8-row unroll",
        "backends/_blocked.py",
        "for jj in range(j, n):\n        wj, row",
        "for jj in range(j + 1, n):\n        wj, row",
        KERNELS,
    ),
    Mutant(
        "dw of the 8th unrolled row gets the 7th's sum",
        "backends/_blocked.py",
        "dw[j + 7] += a7\n        j += _ROWS\n    for jj in range(j, n):\n        row = ",
        "dw[j + 7] += a6\n        j += _ROWS\n    for jj in range(j, n):\n        row = ",
        KERNELS,
    ),
    Mutant(
        "Fortran-order z forgets b",
        "backends/_blocked.py",
        "z[i], z[i + 1], z[i + 2], z[i + 3] = b + s0, b + s1, b + s2, b + s3",
        "z[i], z[i + 1], z[i + 2], z[i + 3] = s0, s1, s2, s3",
        KERNELS,
    ),
    Mutant(
        "the one-column walk forgets b",
        "backends/_blocked.py",
        "        z[i] = b + total\n",
        "        z[i] = total\n",
        KERNELS,
    ),
    Mutant(
        "the Lanes walk reads a column's last Lanes whole",
        "backends/_blocked.py",
        "            wj, count = load_column(w_column, 0, j, LANES), min(LANES, n - j)\n",
        "            wj, count = load_column(w_column, 0, j, LANES), LANES\n",
        KERNELS,
    ),
    Mutant(
        "the Lanes walk's dw drops its second chain",
        "backends/_blocked.py",
        "            store(dw_lanes, j, fma(even, 1.0, odd))\n        i += LANES\n",
        "            store(dw_lanes, j, even)\n        i += LANES\n",
        KERNELS,
    ),
    Mutant(
        "the tuner's race drops every candidate but the best",
        "tuning.py",
        "if median_s[k] <= RACE_MARGIN * best_s[runs[k][0][0]]]",
        "if median_s[k] <= best_s[runs[k][0][0]]]",
        TUNING,
    ),
    Mutant(
        "the stream walk's dw, made in the next step's walk, drops its second chain",
        "backends/_blocked.py",
        "store(dw_lanes, j, fma(even, 1.0, odd))\n                z_streams =",
        "store(dw_lanes, j, even)\n                z_streams =",
        KERNELS,
    ),
    Mutant(
        "the stream walk leaves out its last step's dw",
        "backends/_blocked.py",
        "for first in range(lo, lo + apart + steps, steps):",
        "for first in range(lo, lo + apart, steps):",
        KERNELS,
    ),
    Mutant(
        "the stream walk pairs z with the y of the next column, not of its stream",
        "backends/_blocked.py",
        "dz_streams = fma(gather(y, c, apart), -1.0, sigmoid_lanes(z_streams))\n"
        "                store(dz_next, at, dz_streams)\n"
        "                dz_sums = fma(dz_streams, 1.0, dz_sums)\n"
        "        else:",
        "dz_streams = fma(gather(y, c, 1), -1.0, sigmoid_lanes(z_streams))\n"
        "                store(dz_next, at, dz_streams)\n"
        "                dz_sums = fma(dz_streams, 1.0, dz_sums)\n"
        "        else:",
        KERNELS,
    ),
    Mutant(
        "the stream walk leaves out the columns left over",
        "backends/_blocked.py",
        "for start in range(lo + LANES * apart, hi, steps * LANES):",
        "for start in range(hi, hi, steps * LANES):",
        KERNELS,
    ),
    Mutant(
        "the walk with dw in Lanes makes z in Lanes too",
        "backends/_blocked.py",
        "        if z_one_at_a_time:\n",
        "        if not z_one_at_a_time:\n",
        KERNELS,
    ),
    Mutant(
        "X of exactly the cache's size walked as from memory",
        "backends/_blocked.py",
        "in_cache = n * X.shape[1] * X.itemsize <= plan.f_cache_bytes",
        "in_cache = n * X.shape[1] * X.itemsize < plan.f_cache_bytes",
        KERNELS,
    ),
    Mutant(
        "X of exactly the plan's wide width from memory walked the narrow way",
        "backends/_blocked.py",
        "wide = not in_cache and 0 < plan.f_wide_from_n <= n",
        "wide = not in_cache and 0 < plan.f_wide_from_n < n",
        KERNELS,
    ),
    Mutant(
        "the short columns' sums come out in the lanes of the shuffles",
        "backends/_simd.py",
        "_BIT_REVERSED = (0, 4, 2, 6, 1, 5, 3, 7)",
        "_BIT_REVERSED = (0, 1, 2, 3, 4, 5, 6, 7)",
        KERNELS,
    ),
    Mutant(
        "a short column's load takes one feature past its count",
        "backends/_simd.py",
        'builder.icmp_signed("<", lanes, _splat(builder, count))',
        'builder.icmp_signed("<=", lanes, _splat(builder, count))',
        KERNELS,
    ),
    Mutant(
        "a short column keeps what it read past its count",
        "backends/_simd.py",
        "loaded = builder.select(mask, whole, zero)",
        "loaded = whole",
        KERNELS,
    ),
    Mutant(
        "the short columns read one more column whole, past X's end",
        "backends/_blocked.py",
        "slack // column_stride + 1)",
        "slack // column_stride + 2)",
        KERNELS,
    ),
    Mutant(
        "the short columns' dw reads features 9 to 16 from the column's start",
        "backends/_blocked.py",
        "sums_high = fma(load_column(X, start + i, LANES, high), d, sums_high)",
        "sums_high = fma(load_column(X, start + i, 0, high), d, sums_high)",
        KERNELS,
    ),
    Mutant(
        "Fortran-order dw uses the block's first dz",
        "backends/_blocked.py",
        "dw[j] += column[j] * d\n",
        "dw[j] += column[j] * dz[0]\n",
        KERNELS,
    ),
    Mutant(
        "the transposed block copies the first block's columns every time",
        "backends/_blocked.py",
        "buffer[j, i + k] = X[j, start + i + k]",
        "buffer[j, i + k] = X[j, i + k]",
        KERNELS,
    ),
    Mutant(
        "numba_loops multiplies by z instead of dz",
        "backends/numba_loops.py",
        "dw[j, 0] += X[j, i] * dz",
        "dw[j, 0] += X[j, i] * z",
        KERNELS,
    ),
    Mutant(
        "the pipelined C order forgets the last block's dw pass",
        "backends/_blocked.py",
        "        dz, dz_next = dz_next, dz\n    _dw_rows(X, previous, previous_size, dz, dw)",
        "        dz, dz_next = dz_next, dz",
        KERNELS,
    ),
    Mutant(
        "the pipelined C order's dw pass uses the new block's dz",
        "backends/_blocked.py",
        "_z_dw_rows(w, b, X, start, previous, size, z, dz, dw)",
        "_z_dw_rows(w, b, X, start, previous, size, z, dz_next, dw)",
        KERNELS,
    ),
    Mutant(
        "sigmoid branch flipped in the fused kernels",
        "backends/_exp.py",
        'positive = builder.fcmp_ordered(">=", z, _doubles(0.0))',
        'positive = builder.fcmp_ordered("<=", z, _doubles(0.0))',
        KERNELS,
    ),
    # The hand-written exp: inside the gradient's 1e-10 tolerance, outside its documented ulp
    Mutant(
        "exp's polynomial cut to degree 11 (about 50x less accurate)",
        "backends/_exp.py",
        "_COEFFICIENTS = tuple(1.0 / math.factorial(k) for k in range(13, -1, -1))",
        "_COEFFICIENTS = tuple(1.0 / math.factorial(k) for k in range(11, -1, -1))",
        EXP,
    ),
    Mutant(
        "exp's range reduction drops the low part of ln 2",
        "backends/_exp.py",
        'r = vector_call(builder, "fma", k, _doubles(-_LN2_LO), r)',
        "r = r",
        EXP,
    ),
    Mutant(
        "exp scales by 2^k in one factor: subnormal results wrong",
        "backends/_exp.py",
        "half = builder.ashr(k_int, _integers(1))",
        "half = k_int",
        EXP,
    ),
    Mutant(
        "exp's floor too high: exp(-800) is not 0",
        "backends/_exp.py",
        "_EXP_FLOOR = -1400.0",
        "_EXP_FLOOR = -700.0",
        EXP,
    ),
    Mutant(
        "numpy sigmoid of negative z by subtraction (cancels for tiny values)",
        "sigmoid.py",
        "np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))",
        "np.where(z >= 0, 1.0 / (1.0 + e), 1.0 - 1.0 / (1.0 + e))",
        EXP,
    ),
    Mutant(
        "scalar sigmoid in the textbook form (overflows below -709)",
        "sigmoid.py",
        "e = math.exp(z)\n    return e / (1.0 + e)",
        "return 1.0 / (1.0 + math.exp(-z))",
        EXP,
    ),
    # The statistics
    Mutant(
        "t interval divides by n instead of sqrt(n)",
        "stats.py",
        "/ math.sqrt(logs.size)",
        "/ logs.size",
        STATS,
    ),
    Mutant(
        "one-sided t quantile for a two-sided interval",
        "stats.py",
        "_scipy_stats().t.ppf((1 + CONFIDENCE) / 2, degrees_of_freedom)",
        "_scipy_stats().t.ppf(CONFIDENCE, degrees_of_freedom)",
        STATS,
    ),
    Mutant(
        "a pass's time is the mean of its rounds, not the median",
        "stats.py",
        "[float(np.log(np.median(_rounds(p)))) for p in samples]",
        "[float(np.log(np.mean(_rounds(p)))) for p in samples]",
        STATS,
    ),
    Mutant(
        "a paired ratio is the mean of its blocks, not the median",
        "stats.py",
        "[float(np.median(_block_log_ratios(a[k], b[k]))) for k in range(passes)]",
        "[float(np.mean(_block_log_ratios(a[k], b[k]))) for k in range(passes)]",
        STATS,
    ),
    Mutant(
        "Welch's degrees of freedom replaced by the pooled ones",
        "stats.py",
        "freedom = (vx + vy) ** 2 / (vx**2 / (x.size - 1) + vy**2 / (y.size - 1))",
        "freedom = x.size + y.size - 2",
        STATS,
    ),
    Mutant(
        "a change called when the median alone is beyond the band",
        "stats.py",
        'if ratio.low > 1 + tie_band:\n        return "slower"',
        'if ratio.value > 1 + tie_band:\n        return "slower"',
        STATS,
    ),
    Mutant(
        "unstable only where every pass varies",
        "stats.py",
        "if cvs and max(cvs) > UNSTABLE_CV:",
        "if cvs and min(cvs) > UNSTABLE_CV:",
        STATS,
    ),
    # Comparing runs
    Mutant(
        "B/A computed as A/B",
        "compare.py",
        "change = between_runs(record_a.samples, record_b.samples)",
        "change = between_runs(record_b.samples, record_a.samples)",
        COMPARE,
    ),
    Mutant(
        "--fail-above judged by the median, not the whole interval",
        "compare.py",
        'c.verdict in ("slower", DRIFTED) and c.change.low > 1 + percent / 100',
        'c.verdict in ("slower", DRIFTED) and c.ratio > 1 + percent / 100',
        COMPARE,
    ),
    Mutant(
        "the CLI prints slower for faster",
        "cli.py",
        "{c.verdict:{wide}}",
        "{'slower' if c.verdict == 'faster' else c.verdict:{wide}}",
        COMPARE,
    ),
    Mutant(
        "--fail-above never fails",
        "cli.py",
        "return 1 if worse else 0",
        "return 0",
        COMPARE,
    ),
    # The interactive report
    Mutant(
        "report.html shows b over a",
        "interactive.py",
        "speedup = ratio(theirs, mine)",
        "speedup = ratio(mine, theirs)",
        ("tests/test_interactive.py",),
    ),
    # Training, the grid, the agreement check
    Mutant(
        "the L2 term of the recorded cost twice too large",
        "training.py",
        "l2_penalty / (2 * int(X.shape[1])) * float(np.sum(w * w))",
        "l2_penalty / int(X.shape[1]) * float(np.sum(w * w))",
        ("tests/test_training.py",),
    ),
    Mutant(
        "the numba compiled loop's weight decay with the wrong sign",
        "backends/_jit.py",
        "w = w - learning_rate * (dw + weight_decay * w)",
        "w = w - learning_rate * (dw - weight_decay * w)",
        ("tests/test_training.py",),
    ),
    # `loopvec check`'s diagnosis
    Mutant(
        "a sign error reported as a scale error",
        "diagnosis.py",
        "divisors = {name: v.divisor for name, v in parts}",
        'divisors = {name: "1" if v.sign < 0 else v.divisor for name, v in parts}',
        CHECK,
    ),
    Mutant(
        "the bias-ignored variant keeps the bias (never matched)",
        "diagnosis.py",
        "unbiased = Problem(problem.w, 0.0, problem.X, problem.Y)",
        "unbiased = problem",
        CHECK,
    ),
    # A machine that drifts (loopvec.drift, the interleaved comparison, the ABBA order)
    Mutant(
        "a drifted cell is still called changed",
        "compare.py",
        'if called != "same" and explains(change, moved):',
        'if called == "same" and explains(change, moved):',
        DRIFT,
    ),
    Mutant(
        "the canary's between-run test reads run A twice",
        "drift.py",
        "between = difference_between_runs(levels_a, levels_b) if levels_a and levels_b else None",
        "between = difference_between_runs(levels_a, levels_a) if levels_a and levels_b else None",
        DRIFT,
    ),
    Mutant(
        "two versions compared by Welch's t, not by their pairs of passes",
        "compare.py",
        "        if interleaved:\n",
        "        if False:\n",
        DRIFT,
    ),
    Mutant(
        "ABBA runs A first in every pair (AB AB: a trend favours B)",
        "runner/versions.py",
        "return [(v if k % 2 else 1 - v, k) for k in range(1, passes + 1) for v in (0, 1)]",
        "return [(v, k) for k in range(1, passes + 1) for v in (0, 1)]",
        DRIFT,
    ),
    # The kernel plan (loopvec.tuning)
    Mutant(
        "the plan is left out of the kernels' code fingerprint",
        "provenance.py",
        'modules["kernel plan"] = json_digest(kernel_plan()._asdict())',
        "pass",
        TUNING,
    ),
    Mutant(
        "the plan chosen by its best problem, not over all problems",
        "tuning.py",
        "mean = {option: sum(logs[option]) / len(logs[option]) for option",
        "mean = {option: min(logs[option]) for option",
        TUNING,
    ),
    Mutant(
        "a new plan replaces the plan before that it does not beat as a whole",
        "tuning.py",
        "return plan if mean_log > math.log1p(DEFAULT_TIE_BAND) else before",
        "return plan",
        TUNING,
    ),
    Mutant(
        "the plan before, beaten as a whole, stays",
        "tuning.py",
        "return plan if mean_log > math.log1p(DEFAULT_TIE_BAND) else before",
        "return before",
        TUNING,
    ),
    Mutant(
        "the tuner's walk one at a time with dw in Lanes is the plain walk one at a time",
        "tuning.py",
        '"F single lanes": (1, 1),',
        '"F single lanes": (1, 0),',
        TUNING,
    ),
    Mutant(
        "the tuner measures an X its machine's cache holds",
        "tuning.py",
        "return max(TUNE_X_BYTES, CACHE_FACTOR * cache_bytes)",
        "return TUNE_X_BYTES",
        TUNING,
    ),
    Mutant(
        "the tuner times X in cache by the walk from memory",
        "tuning.py",
        "return _f_way(n, f[1], f[3] if _in_cache(n, m, cache_bytes) else f[2])",
        "return _f_way(n, f[1], f[2])",
        TUNING,
    ),
    Mutant(
        "a near tie moves the plan off today's constants",
        "tuning.py",
        "return keep[0] if keep else max(safest, key=prefer)",
        "return min(options, key=lambda option: mean[option])",
        TUNING,
    ),
    Mutant(
        "a near tie moves the plan off the plan before",
        "tuning.py",
        "kept = (DEFAULT_PLAN,) if before is None else (before, DEFAULT_PLAN)",
        "kept = (DEFAULT_PLAN,)",
        TUNING,
    ),
    Mutant(
        "the plan before is kept however far behind",
        "tuning.py",
        "keep = [option for option in kept if option in safest]",
        "keep = [option for option in kept if option in options]",
        TUNING,
    ),
    Mutant(
        "the plan before keeps its walk from memory for X in cache too",
        "tuning.py",
        "_f_walk(plan, in_cache=plan.f_cache_bytes > 0),",
        "_f_walk(plan),",
        TUNING,
    ),
    Mutant(
        "the plan before keeps its walk from memory for wide X too",
        "tuning.py",
        "[(p.f_wide_from_n, _f_walk(p, wide=True)) for p in kept if p.f_wide_from_n]",
        "[(p.f_wide_from_n, _f_walk(p)) for p in kept if p.f_wide_from_n]",
        TUNING,
    ),
    Mutant(
        "the tuner walks wide X from memory the narrow way",
        "tuning.py",
        "return _f_way(n, f_below, walk if 0 < at <= n else f_walk)",
        "return _f_way(n, f_below, f_walk)",
        TUNING,
    ),
    Mutant(
        "the plan before may be another machine's",
        "tuning.py",
        'if measurement["machine_fingerprint"] == _machine()["fingerprint"]:',
        "if measurement:",
        TUNING,
    ),
    Mutant(
        "the newest plan of this machine is the plan before, over the one this code kept",
        "tuning.py",
        'kept.append((file == path, str(measurement["measured_at"]), plan))',
        'kept.append((False, str(measurement["measured_at"]), plan))',
        TUNING,
    ),
    Mutant(
        "of near equals on the mean, the worst problem ignored",
        "tuning.py",
        "safest = [option for option in equals if worst[option] <= least_worst + band]",
        "safest = equals",
        TUNING,
    ),
    Mutant(
        "of near equals the first candidate listed, not the largest block",
        "tuning.py",
        "return keep[0] if keep else max(safest, key=prefer)",
        "return keep[0] if keep else safest[0]",
        TUNING,
    ),
    # The measurement protocol (loopvec.runner)
    Mutant(
        "the memory rule ignores its 80 % headroom",
        "runner/rules.py",
        "if needed <= MEMORY_HEADROOM * available_bytes:",
        "if needed <= available_bytes:",
        RUNNER,
    ),
    Mutant(
        "resume ignores the code fingerprint (compares the record with itself)",
        "runner/rules.py",
        'if record.get("code_fingerprint") != provenance["code_fingerprint"]:',
        'if record.get("code_fingerprint") != record["code_fingerprint"]:',
        RUNNER,
    ),
    Mutant(
        "a later pass re-decides a budget skip from its own prediction",
        "runner/rules.py",
        "        return history.skipped\n",
        "        return reason\n",
        RUNNER,
    ),
    Mutant(
        "the first call's budget counts the compilation JAX does for each shape",
        "runner/rules.py",
        "return max(first_call_s - (compile_s if compiles_per_shape else 0.0), 0.0)",
        "return first_call_s",
        RUNNER,
    ),
    Mutant(
        "later passes take the sizes in the first pass's order (not shuffled)",
        "runner/plan.py",
        "return [items[k] for k in rng.permutation(len(items))] if pass_number > 1 else items",
        "return items",
        RUNNER,
    ),
    # The memory axis
    Mutant(
        "a cell keeps the smallest peak of its passes",
        "memory.py",
        "            fields[name] = max(values)",
        "            fields[name] = min(values)",
        MEMORY,
    ),
    Mutant(
        "the memory rule keeps the guess where the backend's memory was measured",
        "runner/rules.py",
        "    if measured_bytes is None:\n        measured_bytes = BACKENDS",
        "    if True:\n        measured_bytes = BACKENDS",
        MEMORY,
    ),
    Mutant(
        "one call a side is called exact",
        "compare.py",
        "len(v) > 1 and len({max(b, PAGE_BYTES) for b in v}) == 1",
        "len({max(b, PAGE_BYTES) for b in v}) == 1",
        MEMORY,
    ),
    Mutant(
        "the agreement check 10,000 times too lax",
        "agreement.py",
        "dw_ok = np.abs(dw - self.dw) <= rtol * self.scale_dw",
        "dw_ok = np.abs(dw - self.dw) <= 1e4 * rtol * self.scale_dw",
        ("tests/test_agreement.py",),
    ),
]


def copy_package(work: Path) -> Path:
    """A fresh copy of src/loopvec under `work`/src (always the same path, so the compiled code
    of unmutated modules is found again); returns the folder to put on PYTHONPATH."""
    source = work / "src"
    shutil.rmtree(source, ignore_errors=True)
    shutil.copytree(PACKAGE, source / "loopvec", ignore=shutil.ignore_patterns("__pycache__"))
    return source


def apply(mutant: Mutant, source: Path) -> None:
    path = source / "loopvec" / mutant.path
    text = path.read_text()
    if text.count(mutant.before) != 1:
        raise SystemExit(
            f"mutant {mutant.name!r} no longer applies: {mutant.path} holds its code "
            f"{text.count(mutant.before)} times, not once; update tests/mutants.py"
        )
    path.write_text(text.replace(mutant.before, mutant.after))


def run_tests(tests: tuple[str, ...], env: dict[str, str]) -> tuple[int | None, str]:
    """(pytest's exit code, or None on timeout; the last lines of its output)."""
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests]
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_S,
            check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return None, f"timed out after {TIMEOUT_S} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    return done.returncode, "\n".join(lines[-15:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="run the mutants whose name contains any of these")
    parser.add_argument("--list", action="store_true", help="list the mutants and stop")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.names or any(s in m.name for s in args.names)]
    if args.list or not chosen:
        print("\n".join(f"{m.path:28} {m.name}" for m in chosen) or "no mutant matches")
        return 0 if chosen else 2

    work = Path(tempfile.gettempdir()) / "loopvec-mutants"
    source = copy_package(work)
    cache = os.environ.get("NUMBA_CACHE_DIR") or str(work / "numba")
    env = {**os.environ, "PYTHONPATH": str(source), "NUMBA_CACHE_DIR": cache}
    where = subprocess.run(
        [sys.executable, "-c", "import loopvec; print(loopvec.__file__)"],
        env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    if not where.startswith(str(source)):
        raise SystemExit(f"the tests would import loopvec from {where}, not the copy in {source}")

    tests = tuple(sorted({t for m in chosen for t in m.tests}))
    print(f"unmutated: {' '.join(tests)}", flush=True)
    code, output = run_tests(tests, env)
    if code != 0:
        print(output)
        raise SystemExit("the tests fail without a mutant: fix them first")

    survivors = []
    for number, mutant in enumerate(chosen, 1):
        source = copy_package(work)
        apply(mutant, source)
        start = time.perf_counter()
        code, output = run_tests(mutant.tests, env)
        seconds = time.perf_counter() - start
        if code in (0, 5):  # passed, or no test ran: either way nothing caught it
            survivors.append(mutant)
            verdict = "SURVIVED"
        else:
            failed = [line for line in output.splitlines() if line.startswith(("FAILED", "ERROR"))]
            verdict = f"killed by {failed[0].split()[1] if failed else output.splitlines()[-1]}"
        print(f"[{number}/{len(chosen)}] {mutant.name}: {verdict} ({seconds:.0f} s)", flush=True)
        if mutant in survivors:
            print(output)
    shutil.rmtree(work / "src", ignore_errors=True)
    print(f"{len(chosen) - len(survivors)} of {len(chosen)} mutants killed")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
