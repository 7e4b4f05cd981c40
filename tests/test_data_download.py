"""Download helpers, offline: checksums, resuming, unpacking, completion marker, CLI."""

import dataclasses
import hashlib
import json
import zipfile

import pytest
import requests

from medseg_kit.data import download as dl
from medseg_kit.data import load_dataset, synthesize
from medseg_kit.data.cli import EXIT_LICENSE, EXIT_MANUAL, download_main
from medseg_kit.data.download import (
    MARKER,
    SOURCES,
    DownloadError,
    LicenseNotAccepted,
    ManualDownloadRequired,
    RemoteFile,
    ResumableDownloader,
    fetch,
    install,
    unpack,
)

URL = "https://example.invalid/kvasir-seg.zip"


class LocalHTTP:
    """Stands in for pooch.HTTPDownloader: serves a local file, honours ``Range`` (or
    not), and can drop the connection after ``fail_after`` bytes."""

    def __init__(self, src, fail_after=None, honour_range=True):
        self.data = src.read_bytes()
        self.fail_after = fail_after
        self.honour_range = honour_range
        self.ranges = []

    def __call__(self, progressbar=False, headers=None, **kwargs):
        rng = (headers or {}).get("Range")
        self.ranges.append(rng)

        def get(url, output_file, pooch_obj, check_only=False):
            start = int(rng[6:-1]) if rng and self.honour_range else 0
            body = self.data[start:]
            if self.fail_after is not None:
                output_file.write(body[: self.fail_after])
                self.fail_after = None  # the next connection works
                raise requests.exceptions.ConnectionError("connection reset")
            output_file.write(body)

        return get


def _zip_dir(folder, zpath, prefix):
    with zipfile.ZipFile(zpath, "w") as z:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                z.write(p, f"{prefix}/{p.relative_to(folder)}")
        z.writestr("__MACOSX/._junk", b"\x00\x05\x16\x07")
    return zpath


@pytest.fixture(scope="module")
def kvasir_zip(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kvzip")
    synthesize("kvasir", tmp / "src", n=3, seed=0, min_size=(32, 40), max_size=(40, 48),
               progress=False)
    return _zip_dir(tmp / "src" / "Kvasir-SEG", tmp / "kvasir-seg.zip", "Kvasir-SEG")


@pytest.fixture
def kv_source(kvasir_zip, monkeypatch):
    data = kvasir_zip.read_bytes()
    remote = RemoteFile("kvasir-seg.zip", URL, f"md5:{hashlib.md5(data).hexdigest()}",
                        len(data), into="", strip="Kvasir-SEG")
    src = dataclasses.replace(SOURCES["kvasir"], files=(remote,), expected_samples=3)
    monkeypatch.setitem(SOURCES, "kvasir", src)
    return remote


def test_license_must_be_accepted(tmp_path, kv_source, kvasir_zip):
    with pytest.raises(LicenseNotAccepted, match="research and educational"):
        install("kvasir", root=tmp_path, http=LocalHTTP(kvasir_zip))
    assert not any(tmp_path.iterdir())


def test_fetch_resumes_a_broken_download(tmp_path, kv_source, kvasir_zip):
    http = LocalHTTP(kvasir_zip, fail_after=1000)
    with pytest.raises(requests.exceptions.ConnectionError):
        fetch(kv_source, tmp_path, progress=False, http=http)
    part = tmp_path / "kvasir-seg.zip.part"
    assert part.stat().st_size == 1000 and not (tmp_path / "kvasir-seg.zip").exists()
    path = fetch(kv_source, tmp_path, progress=False, http=http)
    assert http.ranges == [None, "bytes=1000-"]
    assert path.read_bytes() == kvasir_zip.read_bytes() and not part.exists()
    fetch(kv_source, tmp_path, progress=False, http=http)  # present and verified: no fetch
    assert len(http.ranges) == 2


def test_server_ignoring_range_restarts(tmp_path, kv_source, kvasir_zip):
    (tmp_path / "kvasir-seg.zip.part").write_bytes(kvasir_zip.read_bytes()[:500])
    http = LocalHTTP(kvasir_zip, honour_range=False)
    path = fetch(kv_source, tmp_path, progress=False, http=http)
    assert http.ranges == ["bytes=500-", None]
    assert path.read_bytes() == kvasir_zip.read_bytes()


def test_checksum_mismatch_keeps_nothing(tmp_path, kv_source, kvasir_zip):
    bad = dataclasses.replace(kv_source, known_hash="md5:" + "0" * 32)
    with pytest.raises(DownloadError, match="hash"):
        fetch(bad, tmp_path, progress=False, http=LocalHTTP(kvasir_zip))
    assert not (tmp_path / "kvasir-seg.zip").exists()
    assert not (tmp_path / "kvasir-seg.zip.part").exists()


def test_short_transfer_is_an_error_and_resumable(tmp_path, kvasir_zip):
    class Short(LocalHTTP):
        def __call__(self, progressbar=False, headers=None, **kw):
            inner = super().__call__(progressbar, headers, **kw)

            def get(url, output_file, pooch_obj, check_only=False):
                output_file.write(self.data[:100])  # connection closed quietly
            return get if len(self.ranges) == 1 else inner

    size = kvasir_zip.stat().st_size
    part = tmp_path / "x.part"
    d = ResumableDownloader(part, size, http=Short(kvasir_zip))
    with pytest.raises(DownloadError, match="resume"):
        d(URL, tmp_path / "out", None)
    assert part.stat().st_size == 100
    d(URL, tmp_path / "out", None)
    assert (tmp_path / "out").read_bytes() == kvasir_zip.read_bytes()


def test_install_end_to_end(tmp_path, kv_source, kvasir_zip):
    folder = install("kvasir", accept_license=True, root=tmp_path, progress=False,
                     http=LocalHTTP(kvasir_zip))
    assert folder == tmp_path / "Kvasir-SEG" and (folder / "images").is_dir()
    marker = json.loads((folder / MARKER).read_text())
    assert marker["samples"] == 3 and marker["files"][0]["sha256"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left
    d = load_dataset("kvasir", tmp_path, size=16, progress=False)
    assert len(d) == 3
    again = install("kvasir", accept_license=True, root=tmp_path, progress=False,
                    http=LocalHTTP(kvasir_zip))  # complete: nothing to do
    assert again == folder


def test_wrong_count_leaves_no_folder(tmp_path, kv_source, kvasir_zip, monkeypatch):
    monkeypatch.setitem(SOURCES, "kvasir",
                        dataclasses.replace(SOURCES["kvasir"], expected_samples=1000))
    with pytest.raises(DownloadError, match="found 3 complete samples"):
        install("kvasir", accept_license=True, root=tmp_path, progress=False,
                http=LocalHTTP(kvasir_zip))
    assert not (tmp_path / "Kvasir-SEG").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".Kvasir")]


def test_incomplete_folder_is_not_trusted(tmp_path, kv_source, kvasir_zip):
    (tmp_path / "Kvasir-SEG" / "images").mkdir(parents=True)  # e.g. a killed old unpack
    with pytest.raises(DownloadError, match="not marked complete"):
        install("kvasir", accept_license=True, root=tmp_path, progress=False,
                http=LocalHTTP(kvasir_zip))
    folder = install("kvasir", accept_license=True, root=tmp_path, progress=False,
                     force=True, http=LocalHTTP(kvasir_zip))
    assert (folder / MARKER).is_file()


def test_local_archive_and_bad_checksum(tmp_path, kv_source, kvasir_zip):
    folder = install("kvasir", accept_license=True, root=tmp_path / "a", progress=False,
                     archives={"kvasir-seg.zip": kvasir_zip})
    assert (folder / MARKER).is_file()
    broken = tmp_path / "broken.zip"
    broken.write_bytes(kvasir_zip.read_bytes()[:-20])
    with pytest.raises(DownloadError, match="md5"):
        install("kvasir", accept_license=True, root=tmp_path / "b", progress=False,
                archives={"kvasir-seg.zip": broken})


def test_blastocyst_is_a_manual_step(tmp_path):
    with pytest.raises(ManualDownloadRequired, match="--archive"):
        install("blastocyst", accept_license=True, root=tmp_path)
    synthesize("blastocyst", tmp_path / "src", n=2, seed=0, image_size=(40, 48),
               progress=False)
    z = _zip_dir(tmp_path / "src", tmp_path / "BlastsOnline.zip", "BlastsOnline")
    folder = install("blastocyst", accept_license=True, root=tmp_path / "data",
                     archives={"BlastsOnline.zip": z}, progress=False)
    assert (folder / "Images").is_dir() and (folder / MARKER).is_file()
    assert len(load_dataset("blastocyst", folder, size=16, progress=False)) == 2


def test_unpack_rejects_paths_outside(tmp_path):
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("../evil.txt", b"x")
    with pytest.raises(DownloadError, match="outside"):
        unpack(z, tmp_path / "out")
    (tmp_path / "notzip.zip").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(DownloadError, match="neither"):
        unpack(tmp_path / "notzip.zip", tmp_path / "out")


def test_unpack_strips_a_matching_top_folder(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as f:
        f.writestr("HAM10000_images_part_1/ISIC_0000001.jpg", b"x")
    unpack(z, tmp_path / "o", into="HAM10000_images_part_1")
    assert (tmp_path / "o" / "HAM10000_images_part_1" / "ISIC_0000001.jpg").is_file()


def test_sources_table():
    ham = SOURCES["ham10000"]
    assert [f.known_hash.split(":")[0] for f in ham.files] == ["md5"] * 4
    assert all(len(f.known_hash.split(":")[1]) == 32 and f.size for f in ham.files)
    assert "CC BY-NC 4.0" in dl.license_text("ham10000")
    assert SOURCES["kvasir"].files[0].known_hash.startswith("sha256:")
    assert SOURCES["blastocyst"].files[0].url is None and SOURCES["blastocyst"].manual


def test_download_cli_exit_codes(tmp_path, capsys):
    assert download_main(["kvasir", "--data-dir", str(tmp_path)]) == EXIT_LICENSE
    out = capsys.readouterr()
    assert "research and educational" in out.out and "--accept-license" in out.err
    code = download_main(["blastocyst", "--accept-license", "--data-dir", str(tmp_path)])
    assert code == EXIT_MANUAL and "Manual step" in capsys.readouterr().err


def _fail_after(n, exc):
    """A stand-in for shutil.copyfileobj that copies ``n`` entries, then raises ``exc``."""
    real = dl.shutil.copyfileobj
    calls = {"n": 0}

    def copy(src, dst, length=0):
        calls["n"] += 1
        if calls["n"] > n:
            dst.write(src.read(7))  # a partial entry on disk, then the failure
            raise exc
        return real(src, dst, length)

    return copy


def _hidden(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("exc", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_interrupted_unpack_leaves_nothing_partial(kvasir_zip, tmp_path, monkeypatch, exc):
    with monkeypatch.context() as m:
        m.setattr(dl.shutil, "copyfileobj", _fail_after(1, exc))
        with pytest.raises(DownloadError if isinstance(exc, OSError) else KeyboardInterrupt,
                           match="No space left" if isinstance(exc, OSError) else None):
            unpack(kvasir_zip, tmp_path / "out", into="", strip="Kvasir-SEG")
    assert not (tmp_path / "out").exists() and not _hidden(tmp_path)
    target = unpack(kvasir_zip, tmp_path / "out", into="", strip="Kvasir-SEG")
    assert len(list((target / "images").iterdir())) == 3 and not _hidden(tmp_path)


def test_interrupted_unpack_into_a_shared_folder(kvasir_zip, tmp_path, monkeypatch):
    """Several archives unpack into one folder: a failing one leaves the others alone."""
    dest = tmp_path / "HAM10000"
    (dest / "HAM10000_images_part_1").mkdir(parents=True)
    (dest / "HAM10000_images_part_1" / "ISIC_0000001.jpg").write_bytes(b"x")
    before = sorted(p.relative_to(dest) for p in dest.rglob("*"))
    with monkeypatch.context() as m:
        m.setattr(dl.shutil, "copyfileobj", _fail_after(2, OSError("disk full")))
        with pytest.raises(DownloadError, match=r"cannot unpack .*kvasir-seg.zip.*disk full"):
            unpack(kvasir_zip, dest, into="")
    assert sorted(p.relative_to(dest) for p in dest.rglob("*")) == before
    assert not _hidden(tmp_path)
    unpack(kvasir_zip, dest, into="")
    assert (dest / "HAM10000_images_part_1" / "ISIC_0000001.jpg").read_bytes() == b"x"
    assert len(list((dest / "Kvasir-SEG" / "masks").iterdir())) == 3


def test_interrupted_install_then_rerun(tmp_path, kv_source, kvasir_zip, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(dl.shutil, "copyfileobj", _fail_after(1, OSError("disk full")))
        with pytest.raises(DownloadError, match="disk full"):
            install("kvasir", accept_license=True, root=tmp_path, progress=False,
                    http=LocalHTTP(kvasir_zip))
    assert not (tmp_path / "Kvasir-SEG").exists() and not _hidden(tmp_path)
    folder = install("kvasir", accept_license=True, root=tmp_path, progress=False,
                     http=LocalHTTP(kvasir_zip))
    assert (folder / MARKER).is_file() and not _hidden(tmp_path)
    assert len(load_dataset("kvasir", tmp_path, size=16, progress=False)) == 3


def test_stale_staging_of_a_killed_unpack_is_swept(tmp_path, kv_source, kvasir_zip):
    """A run killed outright (no cleanup) leaves its staging folder; the next run removes it."""
    (tmp_path / ".Kvasir-SEG.tmp-999.unpack-999" / "images").mkdir(parents=True)
    (tmp_path / ".out.unpack-999").mkdir()
    unpack(kvasir_zip, tmp_path / "out", strip="Kvasir-SEG")
    assert not (tmp_path / ".out.unpack-999").exists()
    install("kvasir", accept_license=True, root=tmp_path, progress=False,
            http=LocalHTTP(kvasir_zip))
    assert not _hidden(tmp_path)


def test_force_replaces_a_folder_by_renames(tmp_path, kv_source, kvasir_zip):
    first = install("kvasir", accept_license=True, root=tmp_path, progress=False,
                    http=LocalHTTP(kvasir_zip))
    (first / "stale.txt").write_text("from the old install")
    again = install("kvasir", accept_license=True, root=tmp_path, progress=False,
                    force=True, http=LocalHTTP(kvasir_zip))
    assert again == first and not (again / "stale.txt").exists()
    assert (again / MARKER).is_file() and not _hidden(tmp_path)
