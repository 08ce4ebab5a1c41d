"""The measurement protocol: how `pytest bench` turns the grid into cell files.

    settings.py   the options, checked once: `Settings`
    folder.py     the run folder: its lock, --fresh, the machine record, damaged files set aside
    driver.py     `Driver`: the passes, each a process, then the report; `PassSpec` hands a pass
                  its settings, folder and machine record
    session.py    `Pass`: one pass's state; resumes, skips, builds problems, writes cell files
    rules.py      the resume rule and the budget and memory rules, as pure functions
    plan.py       the rounds of a cell, the order of a pass, the rests between blocks
    progress.py   the progress line, from what the pass decided
    timing.py     one call timed by hand; waiting for thread pools to sleep
    canary.py     the canary each pass times at its start and end (how fast the machine was)
    versions.py   `--against REV`: two versions of the code in one run, passes in ABBA order
    aa.py         `nox -s aa`: how often a comparison calls a change where there is none
    plugin.py     pytest's side (needs the bench extra): options, `BenchPlugin`
    head_to_head.py   `loopvec check --time`: a user's function against the loops, numpy and
                  the fastest backend, timed by the grid itself (`loopvec.bench`)

What a run measures and what its numbers mean: docs/method.md.
"""
