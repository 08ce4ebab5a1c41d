"""The benchmark grid as pytest runs it: `python -m pytest <this folder>` (the driver, then each
pass), so that an installed loopvec carries it (`loopvec.bench`); a checkout's `bench/` runs it too.
"""
