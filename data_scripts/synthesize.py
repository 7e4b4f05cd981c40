#!/usr/bin/env python
"""Write synthetic look-alikes of the datasets in their real layouts.

    python data_scripts/synthesize.py --dataset ham10000 --out /tmp/ham --n 200 --seed 0

The same as ``medseg-kit data synth``; see medseg_kit.data (ham10000, kvasir, blastocyst).
"""

import sys

from medseg_kit.data.cli import main

if __name__ == "__main__":
    sys.exit(main(["data", "synth", *sys.argv[1:]]))
