"""Fuzz: damaged files in the real layouts never crash ``data check`` or ``train``.

Hypothesis damages a small synthetic tree of each dataset in its real layout — truncated
files, random bytes, empty files, images and masks of the wrong size or mode, files
renamed to a wrong id or deleted, metadata with a column missing or added, garbage rows
or wrong ids — and runs the command line on it:

- ``medseg-kit data check`` exits 0, or exits 1 with a report that names a damaged file;
- a one-round ``medseg-kit train`` exits 0, or exits != 0 with exactly one line on stderr
  starting ``error:`` whose message names a damaged file;
- neither ever ends in a traceback, and ``train`` succeeds only on a folder that ``data
  check`` finds OK: it never trains on data the checker refuses.

Examples are drawn from a fixed seed (the same ones every run). To hunt for new failures,
set ``MEDSEG_FUZZ_EXAMPLES`` (e.g. 200): random examples, that many per dataset.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import matplotlib.pyplot as plt
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from PIL import Image

from medseg_kit import cli
from medseg_kit.data import synthesize
from medseg_kit.data.base import SCANNERS

N = 10  # images per tree: enough for 2 sites after the train/test split
EXAMPLES = int(os.environ.get("MEDSEG_FUZZ_EXAMPLES", "20"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None,
                derandomize="MEDSEG_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# tree name -> (dataset, synthesize options, metadata file relative to the root or None)
TREES = {
    "kvasir": ("kvasir", {"min_size": (36, 44), "max_size": (44, 52)},
               "Kvasir-SEG/kavsir_bboxes.json"),
    "ham10000": ("ham10000", {"image_size": (36, 44)}, "HAM10000_metadata.csv"),
    "blastocyst": ("blastocyst", {"image_size": (36, 44)}, None),
    "blastocyst-gray": ("blastocyst", {"image_size": (36, 44), "layout": "gray"}, None),
}
# pixel modes that each extension can store
MODES = {".jpg": ("grey", "rgb"), ".bmp": ("grey", "rgb", "rgba"),
         ".png": ("grey", "rgb", "rgba", "grey_alpha", "grey16", "noise16", "colour")}
BYTE_FAULTS = ("truncate", "random_bytes", "empty", "delete")  # blind to the contents
FILE_FAULTS = (*BYTE_FAULTS, "wrong_size", "wrong_mode", "other_format", "wrong_id")
# contents of another format written under the file's own name
OTHER_FORMATS = ("tif_float", "tif_pages", "tif_rgb16", "gif", "palette_png", "svg")
CSV_FAULTS = (*BYTE_FAULTS, "drop_column", "extra_column", "garbage_rows", "garbage_lines",
              "wrong_id")
JSON_FAULTS = (*BYTE_FAULTS, "wrong_structure")


@dataclass
class Sample:
    id: str
    image: str  # paths relative to the tree's root
    masks: list[str]


@dataclass
class Tree:
    name: str
    dataset: str
    root: Path
    samples: list[Sample]
    meta: str | None


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Tree]:
    out = {}
    for name, (dataset, options, meta) in TREES.items():
        root = synthesize(dataset, tmp_path_factory.mktemp(name), n=N, seed=3,
                          progress=False, **options)
        samples = [Sample(it.id, str(it.image.relative_to(root)),
                          [str(m.relative_to(root)) for m in it.masks])
                   for it in SCANNERS[dataset](root).items]
        assert len(samples) == N
        out[name] = Tree(name, dataset, root, samples, meta)
    return out


# ------------------------------------------------------------------ damage
@dataclass
class Damage:
    """What was done to the tree and the file names a message may name for it."""

    done: list[str] = field(default_factory=list)
    names: set[str] = field(default_factory=set)


def _resample(a: np.ndarray, h: int, w: int) -> np.ndarray:
    ys = np.linspace(0, a.shape[0] - 1, h).round().astype(int)
    xs = np.linspace(0, a.shape[1] - 1, w).round().astype(int)
    return a[ys][:, xs]


def _in_mode(a: np.ndarray, mode: str, rng: np.random.Generator) -> np.ndarray:
    grey = a if a.ndim == 2 else a[..., :3].max(axis=-1)
    rgb = np.dstack([grey] * 3) if a.ndim == 2 else a[..., :3]
    opaque = np.full(grey.shape, 255, np.uint8)
    if mode == "grey":
        return grey
    if mode == "rgb":
        return rgb
    if mode == "rgba":
        return np.dstack([rgb, opaque])
    if mode == "grey_alpha":
        return np.dstack([grey, opaque])
    if mode == "grey16":
        return grey.astype(np.uint16) * 257
    if mode == "noise16":
        return rng.integers(0, 65536, grey.shape).astype(np.uint16)
    if mode == "colour":  # a different colour for every grey value
        lut = rng.integers(0, 256, (256, 3)).astype(np.uint8)
        return lut[grey]
    raise AssertionError(mode)


def _other_format(a: np.ndarray, fmt: str) -> bytes:
    grey = a if a.ndim == 2 else a[..., :3].max(axis=-1)
    if fmt == "tif_float":
        return iio.imwrite("<bytes>", grey.astype(np.float32) / 255, extension=".tif")
    if fmt == "tif_pages":
        return iio.imwrite("<bytes>", np.stack([grey, 255 - grey]), extension=".tif")
    if fmt == "tif_rgb16":
        return iio.imwrite("<bytes>", np.dstack([grey.astype(np.uint16) * 257] * 3),
                           extension=".tif")
    if fmt == "gif":
        return iio.imwrite("<bytes>", np.stack([grey, grey]), extension=".gif")
    if fmt == "palette_png":
        buf = io.BytesIO()
        Image.fromarray(grey).convert("P").save(buf, format="PNG")
        return buf.getvalue()
    if fmt == "svg":
        return b"<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'/>"
    raise AssertionError(fmt)


def _write_like(path: Path, a: np.ndarray) -> None:
    ext = path.suffix.lower()
    iio.imwrite(path, a, extension=ext, **({"quality": 90} if ext == ".jpg" else {}))


def _new_id(tree: Tree, old: str, k: int) -> str:
    """An id no sample has: real-looking for HAM10000 (so the file is still found)."""
    if tree.dataset == "ham10000":
        return f"ISIC_99{k:05d}"
    if tree.dataset == "kvasir":
        return f"zz{k:05d}{old[7:]}"
    return old.replace("_", "_0", 1) + f"{k}"


def damage_bytes(draw, path: Path, fault: str) -> None:
    """The faults that ignore what the file holds."""
    if fault == "truncate":
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * draw(st.floats(0.0, 0.98)))])
    elif fault == "random_bytes":
        path.write_bytes(draw(st.binary(min_size=1, max_size=400)))
    elif fault == "empty":
        path.write_bytes(b"")
    elif fault == "delete":
        path.unlink()
    else:
        raise AssertionError(fault)


def damage_file(draw, tree: Tree, root: Path, sample: Sample, rel: str, fault: str,
                d: Damage) -> None:
    path = root / rel
    d.names.add(path.name)
    d.done.append(f"{fault} {rel}")
    if fault in BYTE_FAULTS:
        damage_bytes(draw, path, fault)
    elif fault == "wrong_size":
        h, w = draw(st.integers(4, 64)), draw(st.integers(4, 64))
        _write_like(path, _resample(iio.imread(path), h, w))
        d.names |= {Path(p).name for p in (sample.image, *sample.masks)}  # a pair problem
    elif fault == "wrong_mode":
        mode = draw(st.sampled_from(MODES[path.suffix.lower()]))
        rng = np.random.default_rng(draw(st.integers(0, 2**16)))
        _write_like(path, _in_mode(iio.imread(path), mode, rng))
        d.done[-1] += f" -> {mode}"
    elif fault == "other_format":
        fmt = draw(st.sampled_from(OTHER_FORMATS))
        path.write_bytes(_other_format(iio.imread(path), fmt))
        d.done[-1] += f" -> {fmt}"
    elif fault == "wrong_id":
        new = path.with_name(path.name.replace(sample.id, _new_id(tree, sample.id,
                                                                   draw(st.integers(0, 999)))))
        path.rename(new)
        d.names.add(new.name)
        d.done[-1] += f" -> {new.name}"
    else:
        raise AssertionError(fault)


def damage_csv(draw, path: Path, fault: str, d: Damage) -> None:
    d.names.add(path.name)
    d.done.append(f"{fault} {path.name}")
    if fault in BYTE_FAULTS:
        damage_bytes(draw, path, fault)
        return
    if fault == "garbage_lines":  # raw text, not necessarily CSV (quotes, tabs, NUL ...)
        lines = path.read_text().splitlines(keepends=True)
        for _ in range(draw(st.integers(1, 3))):
            junk = draw(st.text(st.characters(codec="utf-8"), max_size=30)) + "\n"
            lines.insert(draw(st.integers(0, len(lines))), junk)
        path.write_text("".join(lines))
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    if fault == "drop_column":
        j = draw(st.integers(0, len(header) - 1))
        d.done[-1] += f" {header[j]}"
        rows = [r[:j] + r[j + 1:] for r in rows]
    elif fault == "extra_column":
        j = draw(st.integers(0, len(header)))
        rows = [header[:j] + ["extra"] + header[j:]] + [
            r[:j] + [draw(st.text(max_size=8))] + r[j:] for r in body]
    elif fault == "garbage_rows":
        for _ in range(draw(st.integers(1, 3))):
            row = draw(st.lists(st.text(max_size=12), max_size=len(header) + 2))
            rows.insert(draw(st.integers(1, len(rows))), row)
    elif fault == "wrong_id":
        i = draw(st.integers(0, len(body) - 1))
        j = header.index("image_id")
        body[i][j] = draw(st.sampled_from([f"ISIC_99{i:05d}", body[(i + 1) % len(body)][j],
                                           "", body[i][j].lower() + "x"]))
        d.done[-1] += f" row {i} -> {body[i][j]!r}"
        rows = [header, *body]
    else:
        raise AssertionError(fault)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=6),
                           lambda kids: st.lists(kids, max_size=3)
                           | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                           max_leaves=8)


def damage_json(draw, path: Path, fault: str, d: Damage) -> None:
    d.names.add(path.name)
    d.done.append(f"{fault} {path.name}")
    if fault == "wrong_structure":
        boxes = json.loads(path.read_text())
        key = draw(st.sampled_from(sorted(boxes)))
        if draw(st.booleans()):
            boxes[key] = draw(JSON_VALUES)
        else:
            boxes = draw(JSON_VALUES)
        path.write_text(json.dumps(boxes))
    else:
        damage_bytes(draw, path, fault)


def damage_tree(draw, tree: Tree, root: Path) -> Damage:
    d = Damage()
    targets = ["image", "mask"] + (["meta"] if tree.meta else [])
    touched: set[str] = set()
    for _ in range(draw(st.integers(1, 2))):
        target = draw(st.sampled_from(targets))
        if target == "meta":
            if tree.meta in touched:
                continue
            touched.add(tree.meta)
            path = root / tree.meta
            if path.suffix == ".csv":
                damage_csv(draw, path, draw(st.sampled_from(CSV_FAULTS)), d)
            else:
                damage_json(draw, path, draw(st.sampled_from(JSON_FAULTS)), d)
            continue
        sample = draw(st.sampled_from(tree.samples))
        rel = sample.image if target == "image" else draw(st.sampled_from(sample.masks))
        if rel in touched:
            continue
        touched.add(rel)
        damage_file(draw, tree, root, sample, rel, draw(st.sampled_from(FILE_FAULTS)), d)
    return d


# -------------------------------------------------------------------- runs
def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def names_one(text: str, names: set[str]) -> bool:
    text = text.lower()
    return any(n.lower() in text for n in names)


def check_and_train(tree: Tree, draw) -> None:
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{tree.name}-") as tmp:
        root = Path(tmp) / "data"
        shutil.copytree(tree.root, root)
        d = damage_tree(draw, tree, root)
        what = f"{tree.name}: {'; '.join(d.done)}"
        code, out, err = run_cli(["data", "check", "--dataset", tree.dataset, "--root",
                                  str(root)])
        assert code in (0, 1) and not err, f"{what}: data check exited {code}\n{out}{err}"
        check_ok = code == 0
        if not check_ok:
            assert "NOT OK" in out and names_one(out, d.names), \
                f"{what}: the report names none of {sorted(d.names)}:\n{out}"
        code, out, err = run_cli([
            "train", "--dataset", tree.dataset, "--data-root", str(root), "--out",
            str(Path(tmp) / "run"), "--rounds", "1", "--size", "32", "--sites", "2",
            "--batch-size", "2", "--strategy", "centralized", "--device", "cpu", "--json"])
        plt.close("all")
        event(f"data check {'OK' if check_ok else 'refused'}, train exit {code}")
        if code == 0:
            assert check_ok, f"{what}: train ran on data that data check refused"
            return
        lines = err.strip().splitlines()
        assert lines and lines[0].startswith("error:"), f"{what}: stderr:\n{err}"
        # one error line; a list of problems follows it indented, then the check hint
        assert all(line.startswith(("  ", "(run `medseg-kit data check")) for line in
                   lines[1:]), f"{what}: more than one error line:\n{err}"
        # A folder the checker finds OK may still be too small to train on (a metadata
        # file cut at a row boundary lists fewer images): a clear error, not about a file.
        assert not check_ok or "sites" in lines[0], \
            f"{what}: data check found the folder OK, train failed:\n{err}"
        assert check_ok or names_one(err, d.names), \
            f"{what}: the error names none of {sorted(d.names)}:\n{err}"


@pytest.mark.parametrize("tree_name", list(TREES))
@FUZZ
@given(data=st.data())
def test_damaged_tree_is_refused_clearly_or_loads(trees, tree_name, data):
    check_and_train(trees[tree_name], data.draw)
