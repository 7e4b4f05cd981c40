"""The comparison matrix: every (dataset, model, strategy, seed) cell trained, evaluated
once at the end, and tabulated the way the MedSegNet10 paper does.

    from medseg_kit import comparison
    from medseg_kit.federated import RunConfig

    results = comparison.run_matrix(
        ["unet", "segnet"], ["centralized", "local", "sflv2"],
        ["kvasir", "ham10000", "blastocyst"], seeds=2, out="runs/compare",
        base_config=RunConfig(size=64, rounds=8, n_images=80, device="cpu"))

or ``medseg-kit compare --models unet,segnet --datasets kvasir,ham10000,blastocyst
--seeds 2 --out runs/compare`` (add ``--size 256 --width paper --rounds 50 --real`` on a
GPU for the paper's setting).

The parts, one job each:

* :mod:`~medseg_kit.comparison.runner`: the cells trained (:func:`run_matrix`,
  :func:`run_cell`), finished ones skipped, interrupted ones resumed;
* :mod:`~medseg_kit.comparison.evaluation`: one scoring pass over the test set, of a
  trained model or of a cached teaching run (:func:`evaluate_run`);
* :mod:`~medseg_kit.comparison.stats`: seed means, the C ≥ S > L checks, and the curves,
  gaps and per-site rows of groups of teaching runs;
* :mod:`~medseg_kit.comparison.tables`: the Markdown tables;
* :mod:`~medseg_kit.comparison.results`: the matrix folder's layout and its files;
* :mod:`~medseg_kit.comparison.cli`: ``medseg-kit compare``.
"""

from .cli import add_compare_command
from .evaluation import evaluate_run, evaluate_strategy, score_predictions, worst_cases
from .results import RESULT, WORST, cell_name, load_worst_cases, savez_atomic, write_results
from .runner import finished_result, parse_seeds, run_cell, run_matrix
from .stats import (
    BASELINES,
    flat_row,
    mean_curves,
    ordering_checks,
    paired_gaps,
    site_rows,
    summarize_cells,
    wire_rows,
)
from .tables import (
    METRIC_NAMES,
    detail_table,
    metric_table,
    ordering_table,
    results_markdown,
    site_rows_table,
    site_table,
    strategy_label,
    wire_table,
)

__all__ = [
    "BASELINES", "METRIC_NAMES", "RESULT", "WORST",
    # runner
    "finished_result", "parse_seeds", "run_cell", "run_matrix",
    # evaluation
    "evaluate_run", "evaluate_strategy", "score_predictions", "worst_cases",
    # stats
    "flat_row", "mean_curves", "ordering_checks", "paired_gaps", "site_rows",
    "summarize_cells", "wire_rows",
    # tables
    "detail_table", "metric_table", "ordering_table", "results_markdown", "site_rows_table",
    "site_table", "strategy_label", "wire_table",
    # results on disk
    "cell_name", "load_worst_cases", "savez_atomic", "write_results",
    # command line
    "add_compare_command",
]
