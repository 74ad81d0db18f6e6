"""Cache entries: filled once, never read half-written, safe with concurrent and killed writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from garbage_lit.data import cache_store
from garbage_lit.data.cache_store import COMPLETE_MARKER, TEMP_PREFIX, cached_entry, content_key

PAYLOAD = {"kind": "test", "images": ["a", "b"]}

# A writer in its own process: logs that it started building, writes half of its data, then waits
# (sleeps SLOW seconds) before finishing; each completed build is appended to builds.log.
WRITER = textwrap.dedent("""
    import importlib.util, sys, time
    from pathlib import Path
    # Load the module by path: importing the garbage_lit.data package would pull in torch and Lightning.
    spec = importlib.util.spec_from_file_location("cache_store", sys.argv[3])
    cache_store = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cache_store)
    cache, slow = Path(sys.argv[1]), float(sys.argv[2])

    def build(folder):
        with (cache / "starts.log").open("a") as log:
            log.write("start\\n")
        with (folder / "data.txt").open("w") as out:
            out.write("half")
            out.flush()
            time.sleep(slow)
            out.write(" and whole")
        with (cache / "builds.log").open("a") as log:
            log.write("built\\n")

    print(cache_store.cached_entry(cache, "things", {"kind": "test", "images": ["a", "b"]}, build))
""")


def _writer(cache: Path, slow: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(cache), str(slow), cache_store.__file__],
                            stdout=subprocess.PIPE, text=True)


def _wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def _whole(folder: Path) -> None:
    (folder / "data.txt").write_text("half and whole")


def test_entry_is_filled_once_and_reused(tmp_path):
    calls = []

    def build(folder: Path) -> None:
        calls.append(folder)
        _whole(folder)

    first = cached_entry(tmp_path, "things", PAYLOAD, build)
    second = cached_entry(tmp_path, "things", PAYLOAD, build)
    assert first == second == tmp_path / "things" / content_key(PAYLOAD)
    assert len(calls) == 1 and calls[0].name.startswith(TEMP_PREFIX)  # built aside, then renamed
    assert (first / "data.txt").read_text() == "half and whole"
    assert (first / COMPLETE_MARKER).is_file()


def test_content_key_changes_with_any_input():
    keys = {content_key(PAYLOAD), content_key({**PAYLOAD, "images": ["a", "c"]}),
            content_key({**PAYLOAD, "images": ["b", "a"]}), content_key({**PAYLOAD, "extra": 1})}
    assert len(keys) == 4
    assert content_key({"images": ["a", "b"], "kind": "test"}) == content_key(PAYLOAD)  # order of keys is not content


def test_leftovers_of_an_interrupted_fill_are_redone_not_read(tmp_path):
    key = content_key(PAYLOAD)
    partial = tmp_path / "things" / f"{TEMP_PREFIX}{key}-99999"
    partial.mkdir(parents=True)
    (partial / "data.txt").write_text("half")
    unmarked = tmp_path / "things" / key  # a folder without the completion marker is not an entry
    unmarked.mkdir()
    (unmarked / "data.txt").write_text("half")

    entry = cached_entry(tmp_path, "things", PAYLOAD, _whole)
    assert (entry / "data.txt").read_text() == "half and whole"
    assert not partial.exists()
    assert [p.name for p in (tmp_path / "things").iterdir() if p.is_dir()] == [key]


def test_a_killed_writer_leaves_nothing_readable_and_the_next_writer_redoes_the_fill(tmp_path):
    writer = _writer(tmp_path, slow=600)
    _wait_for(tmp_path / "starts.log")
    temp = next((tmp_path / "things").glob(f"{TEMP_PREFIX}*"))
    _wait_for(temp / "data.txt")
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait(timeout=30)
    assert not (tmp_path / "things" / content_key(PAYLOAD)).exists()

    # The dead writer's lock is gone with it: this fill neither waits forever nor reuses its half file.
    entry = cached_entry(tmp_path, "things", PAYLOAD, _whole)
    assert (entry / "data.txt").read_text() == "half and whole"
    assert not list((tmp_path / "things").glob(f"{TEMP_PREFIX}*"))


def test_two_concurrent_writers_fill_one_entry_once(tmp_path):
    writers = 2
    procs = [_writer(tmp_path, slow=1.0) for _ in range(writers)]
    outputs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    entry = tmp_path / "things" / content_key(PAYLOAD)
    assert outputs == [str(entry)] * writers
    assert (tmp_path / "builds.log").read_text() == "built\n"  # the second writer waited and reused it
    assert (entry / "data.txt").read_text() == "half and whole"
