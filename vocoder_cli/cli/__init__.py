"""The Typer command-line layer: parse options, call the core, render with Rich. Nothing imports it.

Before torch loads, OpenMP's idle worker threads are told to sleep rather than spin
(``OMP_WAIT_POLICY=PASSIVE``) unless the user chose a policy (``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT``
set). Spinning threads on a machine that is busy with anything else take the core from the one thread
still working: `resynth --stream` with LJ_V2 ran 11x slower with one other busy process on a 2-core
machine (compute RTF 1.02 vs 0.12 sleeping), offline synthesis costs the same either way
(docs/performance.md, "Threads on a busy machine").
"""

import os

if not {"OMP_WAIT_POLICY", "GOMP_SPINCOUNT"} & set(os.environ):
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
