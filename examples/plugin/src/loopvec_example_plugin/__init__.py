"""An example loopvec plug-in, in its two forms (see pyproject.toml's entry points).

The spec form is a `loopvec.Backend` that carries its kernel and what the registry needs to know:
its family, the packages it needs, which thread pool it uses, its dtypes and memory orders.
"""

import loopvec

from loopvec_example_plugin.kernel import gradient

BACKEND = loopvec.Backend(
    module="",
    family="plug-in",
    requires=("numpy",),
    threading="blas",
    summary="the lesson's vectorized formula (numpy), from the example plug-in",
    dtypes=("float64",),
    layouts=("C", "F"),
    kernel=gradient,
)
