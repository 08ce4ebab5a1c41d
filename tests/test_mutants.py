"""The mutation check's list stays in step with the code: each mutant's piece of source is found
exactly once (`nox -s mutants` stops on one that is not, and is not part of CI)."""

from __future__ import annotations

import pytest
from mutants import MUTANTS, PACKAGE


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_every_mutant_finds_its_code_once(mutant) -> None:  # type: ignore[no-untyped-def]
    assert (PACKAGE / mutant.path).read_text(encoding="utf-8").count(mutant.before) == 1
