"""Interactive widgets for the notebooks: ipywidgets controls wired to pure functions.

Each widget only holds controls and redraws; the facts and figures come from
:mod:`medseg_kit.split`, :mod:`medseg_kit.viz`, :mod:`medseg_kit.link` and
:mod:`medseg_kit.metrics`, which are tested without a browser.

* :class:`CutExplorer` — move the cut of a network; see what crosses, what it costs and
  what the server sees.
* :class:`MaskComparer` — scroll through test images with each run's mask outlined.
* :class:`SiteExplorer` — deal a dataset out to simulated sites and see each site's labels.
* :class:`TrainingMonitor` — live learning curves and bytes, with a Stop button.

Every widget has ``.widget`` (the ipywidgets box) and shows itself when it is the last
value of a cell. Each box and its main controls carry a CSS class (``medseg-…``) that the
browser test finds them by.
"""

from .cut import CutExplorer
from .masks import MaskComparer
from .monitor import TrainingMonitor
from .sites import SiteExplorer

__all__ = ["CutExplorer", "MaskComparer", "SiteExplorer", "TrainingMonitor"]
