"""Privacy of the cut, measured: what an honest-but-curious server can reconstruct from
the smashed data and infer of the masks, and what the defenses cost.

* :mod:`.attack` — the inversion attack: a decoder trained on the server's auxiliary
  images turns what the site's front sends back into images (SSIM, PSNR);
* :mod:`.labels` — label inference from the gradients the server receives in the
  U-shaped split (and the vanilla split, where the label itself crosses);
* :mod:`.sweep` — both attacks against trained SplitFed runs, by cut depth and by
  defense strength (wire noise, NoPeek);
* :mod:`.report` — tables, figures and result files; :mod:`.explorer` — a slider over
  the cut depth showing the reconstructions; :mod:`.cli` — ``medseg-kit privacy``.

Example:
    >>> from medseg_kit import course, privacy                         # doctest: +SKIP
    >>> res = privacy.privacy_sweep(course.config(), fronts=[1, 2, 3])  # doctest: +SKIP
    >>> privacy.cut_table(res.rows)                                     # doctest: +SKIP
"""

from .attack import (
    InversionDecoder,
    InversionResult,
    attackable_fronts,
    depth_cut,
    image_scores,
    inversion_attack,
    make_wire,
    reconstruct,
    smashed,
    to_uint8,
    train_decoder,
)
from .cli import add_privacy_command
from .explorer import ReconstructionExplorer
from .labels import (
    THRESHOLDS,
    LabelResult,
    RecordingWire,
    gradient_map,
    label_inference,
    mask_dice,
    threshold_masks,
)
from .report import (
    cut_table,
    defense_name,
    label_table,
    plot_label_inference,
    plot_reconstructions,
    plot_tradeoff,
    tradeoff_rows,
    tradeoff_table,
    write_results,
)
from .sweep import (
    DEFENSES,
    SweepResult,
    aux_images,
    check_strengths,
    clear_trained,
    privacy_sweep,
    site_images,
    trained_run,
)

__all__ = [
    "DEFENSES", "THRESHOLDS", "InversionDecoder", "InversionResult", "LabelResult",
    "RecordingWire", "ReconstructionExplorer", "SweepResult", "add_privacy_command",
    "attackable_fronts", "aux_images", "check_strengths", "clear_trained", "cut_table",
    "defense_name", "depth_cut", "gradient_map", "image_scores", "inversion_attack",
    "label_inference", "label_table", "make_wire", "mask_dice", "plot_label_inference",
    "plot_reconstructions", "plot_tradeoff", "privacy_sweep", "reconstruct", "site_images",
    "smashed", "threshold_masks", "to_uint8", "tradeoff_rows", "tradeoff_table",
    "train_decoder", "trained_run", "write_results",
]
