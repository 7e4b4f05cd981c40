#!/usr/bin/env python
"""Download, verify and unpack the real datasets into MEDSEG_DATA_DIR.

    python data_scripts/download.py kvasir --accept-license
    python data_scripts/download.py ham10000 --accept-license --data-dir /data/medseg
    python data_scripts/download.py blastocyst --accept-license --archive BlastsOnline.zip
    python data_scripts/download.py all --accept-license      (HAM10000 and Kvasir-SEG)

Each dataset's license is printed first and must be accepted with --accept-license.
Downloads resume where a broken transfer stopped, are checked against the published
checksums, and are unpacked into a temporary folder that is verified (sample counts) and
marked complete before it is renamed into place. The Blastocyst (BlastsOnline) archive is
shared by its authors and has to be fetched by hand; the script explains how and takes
the local file with --archive. Exit status: 0 done, 1 failed, 2 license not accepted,
3 manual download needed. The code lives in medseg_kit.data.download (tested offline).
"""

import sys

from medseg_kit.data.cli import download_main

if __name__ == "__main__":
    sys.exit(download_main())
