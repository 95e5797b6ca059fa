"""`expplatform bench`: how fast and how big the pipeline is, against a hand-written floor.

One run generates (once, into a cache) a landing zone at a chosen scale and
measures, each several times (median and min–max):

- **A. Backfill**: the whole range as one single-run backfill through Dagster + dbt;
- **B. Daily run**: one new arrival day on top of the history, early and late;
- **C. Bare lower bound**: the same outputs from the same files with one DuckDB script;
- **D. Dashboard**: the dashboard's queries on the marts vs the seed's ad-hoc SQL;
- **E. One daily partition of the `make run` sample** on a built warehouse, as
  `expplatform materialize --start D --end D` from command start to exit;
- storage: the warehouse file size.

It writes ``bench/results/<timestamp>.json`` (and the same as markdown) and
prints a markdown table. Modules, one job each: :mod:`~expplatform.bench.cli`
(the command's flags), :mod:`~expplatform.bench.options` (scales and options),
:mod:`~expplatform.bench.landing` (the landing-zone cache),
:mod:`~expplatform.bench.workspace` (the temporary workspace and the measured
child processes), :mod:`~expplatform.bench.runner` (what a measured child
runs), :mod:`~expplatform.bench.memory` (peak RSS of a process tree),
:mod:`~expplatform.bench.sections` (the measured sections),
:mod:`~expplatform.bench.targets` (the issue's targets),
:mod:`~expplatform.bench.split` (B's fixed and per-event parts),
:mod:`~expplatform.bench.report` (the markdown report),
:mod:`~expplatform.bench.merge` (results of parts run separately),
:mod:`~expplatform.bench.harness` (the whole run) and
:mod:`~expplatform.bench.sql` (the SQL in the project's ``bench/`` folder).
The figures and how to read them: docs/PERFORMANCE.md.
"""
