"""The middle of a build, in the order it runs; `karma.engine` composes it.

- `start.py`: a new run (context, plan, routing, forecast, budget) or a resumed one (what
  is done stays done, half-done work is salvaged), under the repository's build lock;
- `build.py`: the state one build shares between its tasks (`Build`);
- `task.py`: one task from its first attempt to integration or escalation;
- `attempt.py`: one attempt's work checked, rechecked as healing decided, and merged;
- `gates.py`: the gate suite on the integrated branch, and the review loop;
- `result.py`: how the build ended (`BuildStatus`, `BuildResult`, the JSON rows).

Where an attempt runs (here, or on a Dask worker) is `karma.executor`'s business; how a
failure is treated is `karma.heal`'s.
"""
