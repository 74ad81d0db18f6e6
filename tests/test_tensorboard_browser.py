"""TensorBoard as a person reads it: a real server on a real sweep, opened in headless Chromium
(the `browser` fixture: tests/helpers/browser.py)."""

from __future__ import annotations

import json

import pytest

from helpers import TEST_ACC
from helpers.browser import keep_screenshot, shown
from helpers.data import make_folder_dataset
from helpers.sweeps import run_sweep
from helpers.tensorboard import tensorboard_server

pytestmark = pytest.mark.browser

# What the Scalars page's run selector lists (its labels live in tf-multi-checkbox's shadow DOM).
RUN_LABELS_JS = """
function deep(root, acc) {
  for (const el of root.querySelectorAll('*')) { acc.push(el); if (el.shadowRoot) deep(el.shadowRoot, acc); }
  return acc;
}
return deep(document, []).filter(e => e.localName === 'tf-multi-checkbox')
  .flatMap(box => Array.from(box.shadowRoot.querySelectorAll('.item-label-container')).map(l => l.innerText.trim()));
"""
# The HParams table view as shown: header and rows of the vaadin-grid, each cell's visible text.
HPARAMS_TABLE_JS = """
function deep(root, acc) {
  for (const el of root.querySelectorAll('*')) { acc.push(el); if (el.shadowRoot) deep(el.shadowRoot, acc); }
  return acc;
}
const table = deep(document, []).find(e => e.localName === 'tf-hparams-table-view');
const grid = table && deep(table.shadowRoot, []).find(e => e.localName === 'vaadin-grid');
if (!grid) return [];
return Array.from(grid.shadowRoot.querySelectorAll('tr')).map(tr => Array.from(tr.querySelectorAll('th, td'))
  .map(cell => { const slot = cell.querySelector('slot');
                 return slot ? slot.assignedElements({flatten: true}).map(n => n.innerText).join(' ').trim() : ''; }))
  .filter(row => row.some(text => text));
"""


def test_a_person_tells_every_sweep_job_apart_in_tensorboard(browser, tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    done = run_sweep(sweep, data, "optim=sgd,adam", "lr=0.003,0.01", "epochs=1", "batch_size=4")
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = {}  # TensorBoard run name -> the job's metrics.json
    for n, (optim, lr) in enumerate((o, lr) for o in ("sgd", "adam") for lr in ("0.003", "0.01")):
        jobs[f"{n}/tensorboard/optim={optim},lr={lr}"] = json.loads((sweep / str(n) / "metrics.json").read_text())

    with tensorboard_server(sweep, tmp_path / "tensorboard.log") as url:
        # Scalars: every job is listed, named by what it varies.
        browser.get(f"{url}/#scalars")
        runs = shown(browser, RUN_LABELS_JS, lambda r: len(r) >= len(jobs), "the runs of the sweep")
        assert sorted(runs) == sorted(jobs)
        browser.save_screenshot(str(tmp_path / "tensorboard_scalars.png"))

        # HParams: one row per job whose default columns tell the jobs apart.
        browser.get(f"{url}/#hparams")
        table = shown(browser, HPARAMS_TABLE_JS, lambda t: len(t) > len(jobs), "the HParams table")
        browser.save_screenshot(str(tmp_path / "tensorboard_hparams.png"))
        keep_screenshot(tmp_path / "tensorboard_hparams.png")  # docs/images, with GARBAGE_LIT_SCREENSHOTS=docs/images

    header, *rows = table
    assert header[0] == "Trial ID"
    column = {name: header.index(name) for name in ("model", "optimizer", "lr", "batch_size", TEST_ACC)}
    assert sorted(row[0] for row in rows) == sorted(jobs)
    for row in rows:
        metrics = jobs[row[0]]
        assert row[column["model"]] == metrics["config"]["model"]["arch"] == "resnet18"
        assert row[column["optimizer"]] == metrics["config"]["optim"]["algorithm"].rsplit(".", 1)[-1]
        assert float(row[column["lr"]]) == pytest.approx(metrics["config"]["lr"])
        assert float(row[column["batch_size"]]) == metrics["config"]["batch_size"] == 4
        assert float(row[column[TEST_ACC]]) == pytest.approx(metrics["final"][TEST_ACC], abs=1e-4)
    assert {row[column["optimizer"]] for row in rows} == {"SGD", "Adam"}
    for png in ("tensorboard_scalars.png", "tensorboard_hparams.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
