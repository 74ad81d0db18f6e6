"""predict tells every file it did not predict, and why, judged as training's scan judges files; any path can be
given without learning Hydra's grammar (after ``--``, or in ``inputs_file``), and the quoting that works in a Hydra
list is the one the docs show."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from garbage_lit.data.datasets import collect_inputs
from garbage_lit.data.images import not_an_image

from helpers.data import make_folder_dataset, write_image


def predict(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "garbage_lit.predict", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "GARBAGE_LIT_CACHE_DIR": str(cwd / "cache")})


def rows(cwd: Path) -> list[dict[str, str]]:
    (table,) = (cwd / "outputs" / "predict").glob("*/*/predictions.csv")
    with table.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def odd_folder(root: Path) -> Path:
    """A user's folder: two photos, a broken one, notes, a .heic that is not one and a real JPEG named .avif."""
    write_image(root / "papier & karton" / "foto 1.JPG", (200, 40, 40), seed=1)
    write_image(root / "glas grün" / "b.jpeg", (40, 200, 40), seed=2)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a whole jpeg")
    (root / "notes.txt").write_text("what I photographed")
    (root / "photo.heic").write_text("not an image at all")
    shutil.copy(write_image(root / "tmp.jpg", (40, 40, 200), seed=3), root / "real.avif")
    (root / "tmp.jpg").unlink()
    return root


def test_files_are_judged_as_trainings_scan_judges_them(tmp_path):
    folder = odd_folder(tmp_path / "photos")
    assert not_an_image(folder / "notes.txt").startswith("not an image file (extension .txt; images are .jpg")
    assert not_an_image(folder / "real.avif").endswith("its content is a JPEG image: rename it to real.jpg to use it")
    assert not_an_image(folder / "photo.heic").startswith("not an image file (extension .heic")
    assert not_an_image(folder / "broken.jpg") is None  # an image by its name: decoded, and failed then
    found = {item.path.name: item.skipped for item in collect_inputs([folder])}
    assert set(found) == {"foto 1.JPG", "b.jpeg", "broken.jpg", "notes.txt", "photo.heic", "real.avif"}
    assert not found["foto 1.JPG"] and found["notes.txt"] and found["real.avif"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    base = tmp_path_factory.mktemp("predict")
    data = make_folder_dataset(base / "data")
    done = subprocess.run([sys.executable, "-m", "garbage_lit.train", "debug=fast", "data=folder", f"data.root={data}",
                           f"hydra.run.dir={base / 'run'}"], cwd=base, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GARBAGE_LIT_CACHE_DIR": str(base / "cache")})
    assert done.returncode == 0, done.stderr[-3000:]
    return base / "run" / "checkpoints" / "model.ckpt"


@pytest.mark.slow
def test_every_file_not_predicted_is_a_row_with_its_reason_and_counted(ckpt, tmp_path):
    folder = odd_folder(tmp_path / "photos")
    done = predict(f"ckpt={ckpt}", f"inputs=[{folder}]", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    table = {Path(row["file"]).name: row for row in rows(tmp_path)}
    assert {name: row["status"] for name, row in table.items()} == {
        "broken.jpg": "failed", "b.jpeg": "predicted", "foto 1.JPG": "predicted", "notes.txt": "skipped",
        "photo.heic": "skipped", "real.avif": "skipped"}
    assert table["real.avif"]["error"].endswith("rename it to real.jpg to use it")
    assert table["broken.jpg"]["error"].startswith("unreadable image")
    assert table["b.jpeg"]["top1_class"] and table["notes.txt"]["top1_class"] == ""
    output = done.stdout + done.stderr
    assert "2 predicted, 3 skipped (" in output and "1 failed (broken.jpg: unreadable image" in output


@pytest.mark.slow
def test_a_folder_without_an_image_says_what_it_skipped_and_exits_1(ckpt, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "notes.txt").write_text("nothing to see")
    done = predict(f"ckpt={ckpt}", f"inputs=[{folder}]", cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "no input could be predicted: 0 predicted, 1 skipped (notes.txt: not an image file" in done.stderr
    assert [row["status"] for row in rows(tmp_path)] == ["skipped"]


@pytest.mark.slow
def test_any_path_goes_after_the_separator_or_in_an_inputs_file_and_quoted_in_a_hydra_list(ckpt, tmp_path):
    photo = write_image(tmp_path / "papier & karton" / "foto [1], (a).jpg", (200, 40, 40), seed=1)
    for cwd in ("after", "file", "quoted"):
        (tmp_path / cwd).mkdir()
    after = predict(f"ckpt={ckpt}", "--", str(photo), cwd=tmp_path / "after")  # as it is: no quoting for Hydra
    listing = tmp_path / "photos.txt"
    listing.write_text(f"# my photos\n{photo}\n\n", encoding="utf-8")
    in_file = predict(f"ckpt={ckpt}", f"inputs_file={listing}", cwd=tmp_path / "file")
    quoted = predict(f"ckpt={ckpt}", f"inputs=['{photo}']", cwd=tmp_path / "quoted")  # the docs' Hydra quoting
    for done, cwd in ((after, "after"), (in_file, "file"), (quoted, "quoted")):
        assert done.returncode == 0, (cwd, done.stderr[-3000:])
        assert [(row["file"], row["status"]) for row in rows(tmp_path / cwd)] == [(str(photo), "predicted")]
