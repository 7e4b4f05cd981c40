"""Fetch, verify and unpack the real datasets into ``MEDSEG_DATA_DIR`` (see :func:`install`).

What :func:`install` guarantees:

- the license is shown and must be accepted (``accept_license=True``) before anything is
  fetched;
- files are fetched with pooch (:func:`pooch.retrieve`) into ``<data dir>/downloads``; a
  broken transfer leaves ``<file>.part`` behind and the next run continues it with an HTTP
  range request (:class:`ResumableDownloader`); a server that ignores the range is
  detected by the size and the file is fetched again from the start;
- every file is checked against its published checksum (pooch verifies ``md5:`` /
  ``sha256:`` hashes; a mismatch deletes the file); where no checksum is published this is
  said in :data:`SOURCES` and the SHA-256 of what was fetched is recorded instead;
- archives are unpacked into a temporary folder next to the destination (each archive
  itself all or nothing: :func:`unpack` extracts into a staging folder and moves it into
  place with :func:`os.replace`), the sample counts are verified there with the dataset's
  own scanner, a completion marker (``.medseg_complete.json``: files, hashes, counts) is
  written, and only then is the folder renamed into place — a failure or an interrupt
  leaves no partial dataset, and a half-unpacked folder never looks complete.

The HAM10000 and Kvasir-SEG archives download automatically; the BlastsOnline archive is
shared by its authors on request, so it is a manual step: fetch it yourself and pass the
local file (``archives={"BlastsOnline.zip": path}``, or ``--archive`` on the command line).
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pooch

from .base import LOADERS, SCANNERS, DataError, data_dir

MARKER = ".medseg_complete.json"
USER_AGENT = "medseg_kit (https://github.com/; dataset installer; pooch)"


class DownloadError(RuntimeError):
    """A download, a checksum, an archive or a count did not check out."""


class LicenseNotAccepted(DownloadError):
    """``install`` was called without accepting the dataset's license."""


class ManualDownloadRequired(DownloadError):
    """The dataset cannot be fetched automatically; the message says how to get it."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Attributes:
        name: file name in the downloads folder (and of ``archives`` keys).
        url: where to fetch it; None when it must be fetched by hand.
        known_hash: ``"md5:<hex>"`` or ``"sha256:<hex>"``; None when none is published.
        size: expected size in bytes (detects servers that ignore range requests).
        into: for archives, the sub-folder of the dataset folder to unpack into (``""`` =
            the dataset folder itself); None for a plain file copied as ``copy_as``.
        copy_as: name of a plain file in the dataset folder.
        strip: a single top folder of the archive to unpack the contents of (so that
            ``Kvasir-SEG/images`` lands as ``<root>/Kvasir-SEG/images``, as if the archive
            were unpacked in ``<root>``); defaults to ``into``.
        hash_source: where ``known_hash`` comes from.
    """

    name: str
    url: str | None
    known_hash: str | None
    size: int | None = None
    into: str | None = ""
    copy_as: str | None = None
    strip: str | None = None
    hash_source: str = ""


@dataclass(frozen=True)
class Source:
    """Everything :func:`install` needs to know about one dataset."""

    dataset: str
    folder: str
    files: tuple[RemoteFile, ...]
    license: str
    homepage: str
    citation: str
    expected_samples: int | None
    manual: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


_DV = "https://dataverse.harvard.edu/api/access/datafile"
_DV_HASHES = ("MD5 as listed on the Harvard Dataverse record doi:10.7910/DVN/DBW86T "
              "(version 4); matched by independent downloads")

SOURCES: dict[str, Source] = {
    "ham10000": Source(
        dataset="ham10000",
        folder="HAM10000",
        files=(
            RemoteFile("HAM10000_images_part_1.zip", f"{_DV}/3172585",
                       "md5:4639bfa73ab251610530a97c898e6e46", 1_366_522_108,
                       into="HAM10000_images_part_1", hash_source=_DV_HASHES),
            RemoteFile("HAM10000_images_part_2.zip", f"{_DV}/3172584",
                       "md5:da43d6cc50f6613013be07e8986b384b", 1_403_566_547,
                       into="HAM10000_images_part_2", hash_source=_DV_HASHES),
            RemoteFile("HAM10000_segmentations_lesion_tschandl.zip", f"{_DV}/3838943",
                       "md5:6e8d252e09cfdb0189199f15985a5b84", 10_808_743, into="",
                       hash_source=_DV_HASHES),
            # The metadata is an ingested tabular file: ?format=original gives the CSV
            # that was uploaded, whose MD5 is the one Dataverse lists.
            RemoteFile("HAM10000_metadata.csv", f"{_DV}/4338392?format=original",
                       "md5:8f85fb1aa29d80a2797247e434deb79d", 690_218, into=None,
                       copy_as="HAM10000_metadata.csv", hash_source=_DV_HASHES),
        ),
        license=(
            "HAM10000 (Tschandl, Rosendahl & Kittler, 2018) and the lesion masks of Tschandl "
            "et al. (2020) are published on Harvard Dataverse, doi:10.7910/DVN/DBW86T, under "
            "the Creative Commons Attribution-NonCommercial 4.0 International license "
            "(CC BY-NC 4.0): non-commercial use only, with attribution. Cite: Tschandl P, "
            "Rosendahl C, Kittler H. Sci Data 5, 180161 (2018); Tschandl P et al. Nat Med "
            "26, 1229-1234 (2020). Read the terms on the record before use."),
        homepage="https://doi.org/10.7910/DVN/DBW86T",
        citation="Tschandl et al., Sci. Data 5:180161 (2018); Nat. Med. 26:1229 (2020)",
        expected_samples=10_015,
        notes=("about 2.8 GB to download",),
    ),
    "kvasir": Source(
        dataset="kvasir",
        folder="Kvasir-SEG",
        files=(
            RemoteFile("kvasir-seg.zip", "https://datasets.simula.no/downloads/kvasir-seg.zip",
                       "sha256:03b30e21d584e04facf49397a2576738fd626815771afbbf788f74a7153478f7",
                       46_227_172, into="", strip="Kvasir-SEG",
                       hash_source=("not published by Simula; the SHA-256 that several "
                                    "independent projects (e.g. torch-em) pin for this URL")),
        ),
        license=(
            "Kvasir-SEG (Jha et al., MMM 2020), https://datasets.simula.no/kvasir-seg/: free "
            "for research and educational purposes only; any commercial use needs prior "
            "written permission. Cite: Jha D et al. Kvasir-SEG: A Segmented Polyp Dataset. "
            "MultiMedia Modeling 2020, LNCS 11962, 451-462."),
        homepage="https://datasets.simula.no/kvasir-seg/",
        citation="Jha et al., MMM 2020",
        expected_samples=1_000,
    ),
    "blastocyst": Source(
        dataset="blastocyst",
        folder="Blastocyst",
        files=(RemoteFile("BlastsOnline.zip", None, None, None, into="",
                          strip="BlastsOnline"),),
        license=(
            "The human blastocyst dataset of Saeedi P, Yee D, Au J, Havelock J. Automatic "
            "identification of human blastocyst components via texture. IEEE Trans Biomed "
            "Eng 64(12):2968-2978 (2017), Simon Fraser University / Pacific Centre for "
            "Reproductive Medicine. It is shared by the authors for research use; follow "
            "the terms that come with it and cite the paper."),
        homepage="https://ieeexplore.ieee.org/document/8059868",
        citation="Saeedi et al., IEEE TBME 64(12):2968 (2017)",
        expected_samples=None,
        manual=(
            "The BlastsOnline archive cannot be fetched automatically: its authors (Saeedi "
            "et al., Simon Fraser University) share it from a vault.sfu.ca link (projects "
            "that use it cite one; see the paper, or ask the authors), with no stable "
            "download URL or checksum. Download the archive (a zip holding "
            "BlastsOnline/Images, GT_ICM, GT_TE, GT_ZP) with your browser, then run\n"
            "    python data_scripts/download.py blastocyst --accept-license "
            "--archive /path/to/BlastsOnline.zip\n"
            "The installer checks that every image has its three masks (no checksum is "
            "published, so the SHA-256 of your copy is recorded in the marker)."),
    ),
}


def license_text(name: str) -> str:
    """The license notice shown before ``name`` is installed."""
    src = _source(name)
    return f"{src.license}\nHomepage: {src.homepage}"


def _source(name: str) -> Source:
    if name not in SOURCES:
        raise ValueError(f"no download source for {name!r}; have {', '.join(SOURCES)}")
    return SOURCES[name]


# ------------------------------------------------------------------ fetching
class ResumableDownloader:
    """A pooch downloader that keeps partial data in ``part`` and resumes from it.

    pooch calls it with a temporary output name; it appends to ``part`` with an HTTP
    ``Range`` request (delegated to :class:`pooch.HTTPDownloader`), then moves the
    finished ``part`` onto that name so pooch can verify the hash and move it into place.
    A broken transfer raises and leaves ``part`` for the next attempt.

    Args:
        part: where partial data lives between runs.
        size: expected final size in bytes, or None.
        progressbar: passed to pooch.
        http: factory ``http(**kwargs) -> downloader`` (``pooch.HTTPDownloader``; tests
            swap in a local one).
    """

    def __init__(self, part: Path, size: int | None = None, progressbar: bool = False,
                 http: Callable = pooch.HTTPDownloader):
        self.part = Path(part)
        self.size = size
        self.progressbar = progressbar
        self.http = http

    def __call__(self, url: str, output_file, pooch_obj, check_only: bool = False):
        if check_only:
            return self.http(progressbar=False)(url, output_file, pooch_obj, check_only=True)
        for attempt in range(2):
            have = self.part.stat().st_size if self.part.is_file() else 0
            if self.size is not None and have > self.size:
                self.part.unlink()  # a server that ignored our range: start again
                have = 0
            if self.size is None or have < self.size:
                headers = {"User-Agent": USER_AGENT}
                if have:
                    headers["Range"] = f"bytes={have}-"
                with open(self.part, "ab") as f:
                    self.http(progressbar=self.progressbar, headers=headers)(url, f, pooch_obj)
            got = self.part.stat().st_size
            if self.size is None or got == self.size:
                break
            if attempt == 1:
                raise DownloadError(f"{url}: got {got} bytes, expected {self.size}")
            if got < self.size:
                raise DownloadError(f"{url}: transfer ended at {got} of {self.size} bytes; "
                                    f"run again to resume from {self.part}")
        os.replace(self.part, output_file)


def fetch(remote: RemoteFile, downloads: Path, progress: bool = True,
          http: Callable = pooch.HTTPDownloader) -> Path:
    """``remote`` in ``downloads`` (fetched or resumed if needed), checksum verified."""
    if remote.url is None:
        raise ManualDownloadRequired(f"{remote.name} must be downloaded by hand")
    downloads.mkdir(parents=True, exist_ok=True)
    dl = ResumableDownloader(downloads / f"{remote.name}.part", remote.size, progress, http)
    try:
        path = pooch.retrieve(remote.url, remote.known_hash, fname=remote.name,
                              path=downloads, downloader=dl, progressbar=progress)
    except ValueError as e:  # pooch's checksum mismatch (the bad file is already gone)
        raise DownloadError(f"{remote.name}: {e}") from e
    return Path(path)


def verify_file(path: Path, remote: RemoteFile) -> dict:
    """Check a local copy of ``remote`` against its checksum; its hashes for the marker."""
    path = Path(path)
    if not path.is_file():
        raise DownloadError(f"{path} does not exist")
    sha256 = pooch.file_hash(str(path), "sha256")
    out = {"name": remote.name, "bytes": path.stat().st_size, "sha256": sha256,
           "checksum": remote.known_hash, "checksum_source": remote.hash_source
           or "none published"}
    if remote.known_hash is not None:
        alg, want = remote.known_hash.split(":", 1)
        got = sha256 if alg == "sha256" else pooch.file_hash(str(path), alg)
        if got.lower() != want.lower():
            raise DownloadError(f"{path} has {alg} {got}, expected {want} ({remote.name}); "
                                f"delete it and download again")
    return out


# ----------------------------------------------------------------- unpacking
def _safe_target(dest: Path, member: str, shown: Path | None = None) -> Path:
    """Where ``member`` lands in ``dest``; DownloadError when it would land outside
    (``../`` or an absolute name). ``shown`` is the folder named in the message."""
    target = (dest / member).resolve()
    if not str(target).startswith(str(dest.resolve()) + os.sep) and target != dest.resolve():
        raise DownloadError(f"archive member {member!r} would land outside {shown or dest}")
    return target


def unpack(archive: Path, dest: Path, into: str = "", strip: str | None = None) -> Path:
    """Unpack a .zip or .tar(.gz) ``archive`` into ``dest/into`` exactly as it is laid out,
    except that a single top folder named ``strip`` (default: ``into``) is not nested.

    All or nothing: the archive is extracted into a temporary folder beside the target
    (``.<target>.unpack-<pid>``) and only a complete extraction is moved into place
    (:func:`os.replace`; entry by entry when the target already exists, as when several
    archives unpack into one folder). A failure — a truncated archive, a full disk, an
    interrupt — removes the temporary folder and leaves the target as it was.
    """
    archive = Path(archive)
    strip_top = strip if strip is not None else into
    target = dest / into if into else dest
    if zipfile.is_zipfile(archive):
        opened = zipfile.ZipFile(archive)
        listing = lambda a: [(i.filename, i.is_dir(), i) for i in a.infolist()]  # noqa: E731
        read = lambda a, member: a.open(member)  # noqa: E731
    elif tarfile.is_tarfile(archive):
        opened = tarfile.open(archive)
        listing = lambda a: [(m.name, m.isdir(), m) for m in a.getmembers()  # noqa: E731
                             if m.isfile() or m.isdir()]
        read = lambda a, member: a.extractfile(member)  # noqa: E731
    else:
        raise DownloadError(f"{archive} is neither a zip nor a tar archive (truncated?)")
    target.parent.mkdir(parents=True, exist_ok=True)
    # The staging name starts with the target's own name, so that install's sweep of its
    # temporary folders (".<folder>.tmp-*") also removes a staging folder a killed run left.
    prefix = f".{target.name.lstrip('.')}.unpack-"
    for stale in target.parent.glob(f"{prefix}*"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = target.parent / f"{prefix}{os.getpid()}"
    try:
        with opened as a:
            staging.mkdir()
            entries = listing(a)
            strip = _strip_prefix([e[0] for e in entries], strip_top)
            for name, is_dir, member in entries:
                name = name[len(strip):] if name.startswith(strip) else name
                if not name:
                    continue
                out = _safe_target(staging, name, target)
                if is_dir:
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                with read(a, member) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        if target.exists():
            _move_into(staging, target)
        else:
            os.replace(staging, target)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as e:
        raise DownloadError(f"cannot unpack {archive} into {target}: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _move_into(src: Path, dst: Path) -> None:
    """Move the contents of folder ``src`` into the existing folder ``dst`` (renames; a
    folder present in both is merged, a file present in both is replaced)."""
    for p in sorted(src.iterdir()):
        q = dst / p.name
        if p.is_dir() and q.is_dir():
            _move_into(p, q)
        else:
            os.replace(p, q)


def _strip_prefix(names: list[str], top: str | None) -> str:
    if not top:
        return ""
    tops = {n.split("/", 1)[0] for n in names if n and not n.startswith("__MACOSX")}
    return f"{top}/" if tops == {top} else ""


def count_samples(dataset: str, folder: Path) -> tuple[int, list[str]]:
    """(complete samples, problems) by the dataset's own scanner."""
    try:
        scan = SCANNERS[dataset](folder)
    except DataError as e:  # no recognisable layout at all
        return 0, [str(e)]
    return len(scan.items), [str(p) for p in scan.problems]


# ------------------------------------------------------------------- install
def is_complete(folder: Path) -> bool:
    return (Path(folder) / MARKER).is_file()


def _replace_folder(new: Path, final: Path, aside: Path) -> None:
    """Put folder ``new`` at ``final`` by renames: an existing ``final`` is first moved to
    ``aside`` (and put back if the second rename fails), then deleted."""
    if not final.exists():
        os.replace(new, final)
        return
    os.replace(final, aside)
    try:
        os.replace(new, final)
    except OSError:
        os.replace(aside, final)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def install(name: str, accept_license: bool = False, root: str | Path | None = None,
            archives: dict[str, str | Path] | None = None, force: bool = False,
            progress: bool = True, keep_archives: bool = True,
            http: Callable = pooch.HTTPDownloader) -> Path:
    """Download (or take local copies of), verify and unpack dataset ``name``.

    Args:
        name: ``ham10000``, ``kvasir`` or ``blastocyst``.
        accept_license: must be True; otherwise :class:`LicenseNotAccepted` carries the
            license text.
        root: the data folder (default :func:`~medseg_kit.data.base.data_dir`).
        archives: local copies by file name (``{"kvasir-seg.zip": path}``), used instead
            of downloading; required for files without a URL (BlastsOnline).
        force: replace an existing dataset folder (complete or not).
        progress: progress bars.
        keep_archives: keep the downloads (``<root>/downloads``) after unpacking.
        http: the HTTP downloader factory (tests pass a local one).

    Returns:
        The dataset folder (``<root>/<folder>``), complete and marked so.
    """
    src = _source(name)
    if name not in LOADERS:
        raise ValueError(f"dataset {name!r} has no loader")
    if not accept_license:
        raise LicenseNotAccepted(f"accept the license of {name} to install it:\n"
                                 f"{license_text(name)}")
    root = Path(root) if root is not None else data_dir()
    final = root / src.folder
    if final.exists():
        if is_complete(final) and not force:
            return final
        if not force:
            raise DownloadError(f"{final} exists but is not marked complete (no {MARKER}); "
                                f"remove it or pass force=True / --force")
    archives = {k: Path(v) for k, v in (archives or {}).items()}
    missing = [f.name for f in src.files if f.url is None and f.name not in archives]
    if missing:
        raise ManualDownloadRequired(src.manual or f"{', '.join(missing)} must be "
                                     f"downloaded by hand")
    downloads = root / "downloads"
    local: dict[str, Path] = {}
    records = []
    for f in src.files:
        local[f.name] = archives.get(f.name) or fetch(f, downloads, progress, http)
        records.append(verify_file(local[f.name], f))
    for stale in root.glob(f".{src.folder}.tmp-*"):  # left by an interrupted install
        shutil.rmtree(stale, ignore_errors=True)
    tmp = root / f".{src.folder}.tmp-{os.getpid()}"
    try:
        tmp.mkdir(parents=True)
        for f in src.files:
            if f.into is None:
                shutil.copyfile(local[f.name], tmp / (f.copy_as or f.name))
            else:
                unpack(local[f.name], tmp, f.into, f.strip)
        count, problems = count_samples(name, tmp)
        if problems:
            raise DownloadError(f"{name}: {len(problems)} problem(s) after unpacking, e.g. "
                                f"{problems[0]}")
        if count == 0 or (src.expected_samples is not None and count != src.expected_samples):
            raise DownloadError(f"{name}: found {count} complete samples after unpacking, "
                                f"expected {src.expected_samples or 'at least one'}")
        marker = {"dataset": name, "samples": count, "files": records,
                  "license_accepted": True, "installed": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "homepage": src.homepage}
        (tmp / MARKER).write_text(json.dumps(marker, indent=1))
        _replace_folder(tmp, final, root / f".{src.folder}.tmp-old-{os.getpid()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if not keep_archives:
        for f in src.files:
            if f.name not in archives:
                local[f.name].unlink(missing_ok=True)
    return final
