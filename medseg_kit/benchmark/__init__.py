"""``medseg-kit bench``: how fast the kit trains, against a plain loop and against itself.

    from medseg_kit.benchmark import BenchSettings, run_bench, to_markdown

    result = run_bench(BenchSettings(models=("unet",), repeats=3))
    print(to_markdown(result))

or ``medseg-kit bench [--models cpu] [--paper] [--quick] --out outputs/bench``. The
numbers it prints and what they mean are in ``BENCHMARKS.md``.

The parts, one job each:

* :mod:`~medseg_kit.benchmark.passes`: what is timed — one pass of the plain loop
  (:class:`PlainLoop`) or of a kit strategy (:class:`KitPass`), and the variants;
* :mod:`~medseg_kit.benchmark.timing`: contenders timed in turns, paired ratios;
* :mod:`~medseg_kit.benchmark.suite`: the settings and :func:`run_bench`;
* :mod:`~medseg_kit.benchmark.machine`: what it ran on;
* :mod:`~medseg_kit.benchmark.profiling`: the top operators of one round;
* :mod:`~medseg_kit.benchmark.notebooks`: the course notebooks' time and memory;
* :mod:`~medseg_kit.benchmark.tables`: Markdown and the files;
* :mod:`~medseg_kit.benchmark.cli`: ``medseg-kit bench``.
"""

from .cli import add_bench_command
from .machine import describe_machine
from .passes import VARIANTS, KitPass, PlainLoop
from .suite import CPU_MODELS, BenchSettings, check_targets, quick_settings, run_bench
from .tables import to_markdown, write

__all__ = ["BenchSettings", "CPU_MODELS", "KitPass", "PlainLoop", "VARIANTS",
           "add_bench_command", "check_targets", "describe_machine", "quick_settings",
           "run_bench", "to_markdown", "write"]
