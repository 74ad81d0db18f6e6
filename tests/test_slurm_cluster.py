"""hydra/launcher=slurm against a real SLURM cluster: sweeps, a failing job, resume, DDP across SLURM tasks,
searches on a PostgreSQL study and a journal file, requeue at the time limit, and jobs that SLURM cancels.

Needs `sbatch` and a running cluster with accounting (`sacct`) and, for the searches, PostgreSQL, e.g. the
one-node cluster of `scripts/slurm_local_cluster.sh start`; skipped otherwise, mandatory in CI
(GARBAGE_LIT_REQUIRE_SLURM=1). The partition is the cluster's default one, or $GARBAGE_LIT_SLURM_PARTITION.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import TEST_ACC
from helpers.data import REPO, make_folder_dataset
from helpers.resume import FINETUNE, STOPPER, same_run
from helpers.system import missing

pytestmark = pytest.mark.slurm

REQUIRE = "GARBAGE_LIT_REQUIRE_SLURM"
# Seconds for one sweep (its jobs take a minute or two each), should a job hang: a bound within CI's budget.
TIMEOUT = 600
# Small jobs: CPU only, one core each, 64 px images (the paper_quick preset's size), 1 epoch.
SMALL = ["debug=fast", "data.image_size=64", "data.resize_size=72"]


@pytest.fixture(scope="module")
def partition() -> str:
    """The partition to submit to; skips (or fails, in CI) when there is no SLURM cluster to talk to."""
    if shutil.which("sbatch") is None:
        missing("sbatch not found: no SLURM on this machine (scripts/slurm_local_cluster.sh start sets one up)",
                REQUIRE)
    done = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=60)
    if done.returncode != 0 or not done.stdout.strip():
        missing(f"no SLURM controller answers sinfo ({done.stderr.strip() or 'no partitions'})", REQUIRE)
    up = dict(line.split()[:2] for line in done.stdout.splitlines() if line.strip())  # name (* = default): state
    default = next((p for p in up if p.endswith("*")), next(iter(up)))
    name = os.environ.get("GARBAGE_LIT_SLURM_PARTITION") or default.rstrip("*")
    state = up.get(name, up.get(name + "*"))
    if state != "up":
        missing(f"SLURM partition {name!r} is {state or 'unknown'} (sinfo: {done.stdout.strip()!r})", REQUIRE)
    return name


def launcher(partition: str, *extra: str) -> list[str]:
    """hydra/launcher=slurm sized for a small CPU node: no GPU, one core and 2 GB per task."""
    return ["hydra/launcher=slurm", f"hydra.launcher.partition={partition}", "hydra.launcher.gpus_per_node=0",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2", "hydra.launcher.timeout_min=15", *extra]


def train_command(sweep: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "garbage_lit.train", "-m", *overrides, f"hydra.sweep.dir={sweep}"]


def environment(base: Path) -> dict[str, str]:
    """The jobs' environment (sbatch passes it on), with the tests' helpers importable for their callbacks."""
    return {**os.environ, "GARBAGE_LIT_CACHE_DIR": str(base / "cache"), "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "tests"), os.environ.get("PYTHONPATH")]))}


def run(command: list[str], base: Path) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=base, env=environment(base), capture_output=True, text=True, timeout=TIMEOUT)


def slurm_job_ids(sweep: Path) -> dict[str, str]:
    """SLURM job id (``12_3`` for array task 3) -> submitit's log of it, from the sweep's ``.submitit/``."""
    ids = {}
    for log in sorted((sweep / ".submitit").glob("*/*_log.out")):
        match = re.search(r"Starting with JobEnvironment\(job_id=([0-9_]+),", log.read_text())
        if match:
            ids[match.group(1)] = log.read_text()
    return ids


def slurm_state(job_id: str) -> dict[str, str]:
    """``scontrol show job`` as a dict (JobState, Partition, ...): what SLURM itself says about the job, once
    it has ended (the job's result file appears while its process is still exiting)."""
    deadline = time.monotonic() + 120
    while True:
        out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, f"SLURM does not know job {job_id}: {out.stderr}"
        state = dict(field.split("=", 1) for field in out.stdout.split() if "=" in field)
        if state["JobState"] not in ("PENDING", "RUNNING", "COMPLETING") or time.monotonic() > deadline:
            return state
        time.sleep(1)


def metrics(job: Path) -> dict:
    return json.loads((job / "metrics.json").read_text())


def test_paper_quick_sweep_runs_as_slurm_jobs_and_the_report_reads_it(partition, tmp_path):
    sweep = tmp_path / "sweep"
    # The paper's grid on the bundled sample at 64 px, narrowed to resnet18 / batch 32: 4 jobs (optim x lr).
    done = run(train_command(sweep, "experiment=paper_quick", "model=resnet18", "model.weights=none",
                             "batch_size=32", "epochs=1", *launcher(partition)), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    jobs = [sweep / str(n) for n in range(4)]
    assert sorted(p.name for p in sweep.iterdir() if p.name.isdigit()) == ["0", "1", "2", "3"]
    results = [metrics(job) for job in jobs]
    assert [r["status"] for r in results] == ["completed"] * 4
    assert {(r["config"]["optim"]["algorithm"], r["config"]["lr"]) for r in results} == {
        (o, lr) for o in ("torch.optim.SGD", "torch.optim.Adam") for lr in (0.003, 0.01)}
    for r in results:
        assert r["config"]["data"]["image_size"] == 64 and [e["epoch"] for e in r["epochs"]] == [0]
        assert 0.0 <= r["final"][TEST_ACC] <= 1.0 and sum(map(sum, r["final"]["confusion_matrix"])) == 36

    # Every job went through SLURM: one array task each, in our partition, and SLURM saw it complete.
    ids = slurm_job_ids(sweep)
    assert len(ids) == 4 and len({i.split("_")[0] for i in ids}) == 1, ids  # one job array
    for job_id in ids:
        state = slurm_state(job_id)
        assert (state["JobState"], state["Partition"]) == ("COMPLETED", partition), state

    report = subprocess.run([sys.executable, "-m", "garbage_lit.report", str(sweep)], capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    assert "4 of 4 jobs completed" in report.stdout
    with (sweep / "jobs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["status"]) for r in rows] == [(str(n), "completed") for n in range(4)]
    assert [float(r[TEST_ACC]) for r in rows] == pytest.approx([m["final"][TEST_ACC] for m in results])


def test_a_job_that_fails_on_the_cluster_is_recorded_as_failed(partition, tmp_path):
    data = make_folder_dataset(tmp_path / "data")  # 24 training images: batch_size=1000 cannot work
    sweep = tmp_path / "sweep"
    done = run(train_command(sweep, *SMALL, "data=folder", f"data.root={data}", "batch_size=4,1000",
                             *launcher(partition)), tmp_path)
    assert done.returncode != 0, "a sweep with a failed job must exit non-zero, as a local one does"

    assert metrics(sweep / "0")["status"] == "completed"
    failed = metrics(sweep / "1")
    assert failed["status"] == "failed"
    assert "batch_size=1000 is larger than the training set" in failed["error"]
    assert (sweep / "1" / "failure.log").read_text().startswith("Traceback")
    # SLURM ran both; the failure is the job's own (recorded by garbage-lit), not the cluster's.
    assert len(slurm_job_ids(sweep)) == 2

    report = subprocess.run([sys.executable, "-m", "garbage_lit.report", str(sweep)], capture_output=True,
                            text=True, timeout=300)
    with (sweep / "jobs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "failed")], report.stderr[-2000:]


def test_resume_of_a_half_finished_cluster_sweep_skips_completed_jobs(partition, tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    # One job at a time (array_parallelism=1), so the sweep can be stopped with job 0 done and job 1 not.
    command = train_command(sweep, *SMALL, "data=folder", f"data.root={data}", "batch_size=4", "seed=0,1",
                            *launcher(partition, "hydra.launcher.array_parallelism=1"))
    submitter = subprocess.Popen(command, cwd=tmp_path, env=environment(tmp_path), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ((sweep / "0" / "metrics.json").is_file() and metrics(sweep / "0")["status"] == "completed"):
            assert submitter.poll() is None, "the sweep ended before it could be interrupted"
            assert time.monotonic() < deadline, "job 0 never completed"
            time.sleep(0.5)
    finally:
        os.killpg(submitter.pid, signal.SIGKILL)  # the submitting process dies ...
        submitter.wait()
    array = next(iter(slurm_job_ids(sweep))).split("_")[0]
    subprocess.run(["scancel", array], check=True, timeout=60)  # ... and the cluster cancels the rest
    deadline = time.monotonic() + 120
    while subprocess.run(["squeue", "-h", "-j", array], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, f"SLURM did not cancel job array {array}"
        time.sleep(1)
    assert not (sweep / "1" / "metrics.json").is_file() or metrics(sweep / "1")["status"] != "completed"
    finished = (sweep / "0" / "metrics.json").read_bytes()

    done = run([*command, "resume=true"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (sweep / "0" / "metrics.json").read_bytes() == finished  # completed on the cluster: not trained again
    assert "already completed; nothing to resume" in (sweep / "0" / "train.log").read_text()
    resumed = metrics(sweep / "1")
    assert resumed["status"] == "completed" and resumed["config"]["seed"] == 1
    assert [e["epoch"] for e in resumed["epochs"]] == [0]


def test_ddp_across_two_slurm_tasks_matches_a_local_two_process_run(partition, tmp_path):
    # The bundled sample (36 test images) at 64 px, 1 epoch; batch 8 per process in both runs.
    ddp = [*SMALL, "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "batch_size=8", "lr=0.01"]
    sweep = tmp_path / "sweep"
    done = run(train_command(sweep, *ddp, *launcher(partition, "hydra.launcher.tasks_per_node=2")), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    cluster = metrics(sweep / "0")
    assert cluster["status"] == "completed" and cluster["config"]["trainer"]["strategy"] == "ddp"
    assert sum(map(sum, cluster["final"]["confusion_matrix"])) == 36  # both ranks' halves, synchronised

    # SLURM started both processes (srun, one task each); Lightning took its ranks from SLURM's environment
    # instead of launching a second process itself.
    logs = {p.name: p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*")}
    (job_id,) = slurm_job_ids(sweep)
    for rank in (0, 1):
        assert f"global_rank={rank}(2)" in logs[f"{job_id}_{rank}_log.out"]
        assert f"GLOBAL_RANK: {rank}, MEMBER: {rank + 1}/2" in logs[f"{job_id}_{rank}_log.err"]
    assert slurm_state(job_id)["NumTasks"] == "2"
    assert not list((sweep / "0").glob("train_ddp_process_*.log"))  # no ranks relaunched by Lightning
    events = list((sweep / "0" / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and len({e.name.rsplit(".", 2)[1] for e in events}) == 1  # rank 0 alone wrote TensorBoard

    local = tmp_path / "local"
    local.mkdir()
    done = subprocess.run([sys.executable, "-m", "garbage_lit.train", *ddp, f"hydra.run.dir={local / 'run'}"],
                          cwd=local, env=environment(tmp_path), capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    single = metrics(local / "run")
    assert single["status"] == "completed"
    assert abs(cluster["final"][TEST_ACC] - single["final"][TEST_ACC]) <= 1 / 36 + 1e-6  # within one test image


# -- searches on a PostgreSQL study, time limits and requeue, jobs that SLURM kills ----------------------------------
# The study database: scripts/slurm_local_cluster.sh creates this role (allowed to create databases) and database.
STUDY_DATABASE = os.environ.get("GARBAGE_LIT_STUDY_DATABASE",
                                "postgresql+psycopg://garbage_lit:garbage_lit@127.0.0.1:5432/garbage_lit")


@pytest.fixture
def study_database(tmp_path) -> str:
    """A new, empty PostgreSQL database for one test's study (dropped afterwards); its SQLAlchemy URL."""
    try:
        import psycopg
        from sqlalchemy.engine import make_url
    except ModuleNotFoundError as exc:
        missing(f"{exc.name} is not installed (pip install -e '.[dev]' brings psycopg)", REQUIRE)
    server = make_url(STUDY_DATABASE)
    name = f"test_{tmp_path.name.lower().replace('-', '_')}_{os.getpid()}"
    connect = {"host": server.host, "port": server.port or 5432, "user": server.username,
               "password": server.password, "dbname": server.database, "autocommit": True}
    try:
        with psycopg.connect(**connect, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        missing(f"no PostgreSQL study server at {server.render_as_string()} ({exc}); "
                f"scripts/slurm_local_cluster.sh start runs one", REQUIRE)
    yield server.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(**connect) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def slurm_times(job_id: str) -> tuple[float, float]:
    """When SLURM started and ended a job (sacct, from the accounting database), as POSIX seconds."""
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "Start,End", "-j", job_id], capture_output=True,
                         text=True, timeout=60, check=True).stdout.split()
    start, end = (time.mktime(time.strptime(t, "%Y-%m-%dT%H:%M:%S")) for t in out[-1].split("|"))
    return start, end


def search_command(sweep: Path, data: Path, storage: str, partition: str, *overrides: str) -> list[str]:
    """hparams_search=optuna on tiny data, 2 trials at a time as SLURM jobs; lr alone searched (random sampler)."""
    return train_command(sweep, "hparams_search=optuna", "debug=fast", "data=folder", f"data.root={data}",
                         "data.val_ratio=0.3", "hparams_search.n_jobs=2", f"hparams_search.storage={storage}",
                         "hparams_search.sampler._target_=optuna.samplers.RandomSampler",
                         "~hparams_search.sampler.n_startup_trials", "hparams_search.exclude=[lr,optim,"
                         "optim.weight_decay,optim.momentum,batch_size,model.label_smoothing,epochs]",
                         "lr=tag(log, interval(1e-3, 1e-1))", *overrides, *launcher(partition))


def test_a_search_runs_its_trials_as_slurm_jobs_on_a_postgresql_study(partition, study_database, tmp_path):
    import optuna

    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    # 6 trials, 2 SLURM jobs at a time, 3 epochs each.
    command = search_command(sweep, data, study_database, partition, "epochs=3", "hparams_search.n_trials=6")
    done = run(command, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    study = optuna.load_study(study_name="search", storage=study_database)
    trials = study.trials
    assert [t.number for t in trials] == list(range(6)) and len({t.params["lr"] for t in trials}) == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    for t in trials:
        # Each trial's job reported every epoch's val/acc to the study through the database (the pruning callback).
        epochs = metrics(sweep / str(t.number))["epochs"]
        assert t.intermediate_values == {e["epoch"]: e["val/acc"] for e in epochs} and len(epochs) == 3
        assert t.value == epochs[-1]["val/acc"]
    # The trials were SLURM jobs, 2 at a time: at least two ran at once (sacct's start and end times).
    ids = slurm_job_ids(sweep)
    assert len(ids) == 7  # 6 trials and the final run
    spans = sorted(slurm_times(job_id) for job_id in ids)
    assert any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:])), spans
    # The best configuration trained once more, as a SLURM job too, and tested once.
    summary = json.loads((sweep / "search.json").read_text())
    final = metrics(sweep / "final")
    assert summary["final"]["trial"] == study.best_trial.number and final["status"] == "completed"
    assert summary["final"][TEST_ACC] == final["final"][TEST_ACC]
    assert "garbage_lit:***@" in summary["storage"]  # the database password stays out of the outputs

    again = run(command, tmp_path)  # the same command continues the finished study: nothing left to run
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(optuna.load_study(study_name="search", storage=study_database).trials) == 6
    assert len(slurm_job_ids(sweep)) == 7 and metrics(sweep / "final") == final


def test_a_search_on_a_journal_file_runs_its_trials_as_slurm_jobs(partition, tmp_path):
    """Optuna's journal file, for a cluster with a shared file system and no database server."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    journal = tmp_path / "shared" / "optuna.journal"
    command = search_command(sweep, data, f"journal:{journal}", partition, "epochs=2", "hparams_search.n_trials=2",
                             "hparams_search.final.enabled=false")
    done = run(command, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    trials = optuna.load_study(study_name="search", storage=JournalStorage(JournalFileBackend(str(journal)))).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 2 and len(slurm_job_ids(sweep)) == 2
    for t in trials:  # reported by each SLURM job into the journal, epoch by epoch
        epochs = metrics(sweep / str(t.number))["epochs"]
        assert t.intermediate_values == {e["epoch"]: e["val/acc"] for e in epochs} and len(epochs) == 2
    assert json.loads((sweep / "search.json").read_text())["storage"] == f"journal:{journal}"


def test_a_job_at_its_time_limit_is_requeued_and_continues_from_its_checkpoint(partition, tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    # A 1-minute time limit (SLURM's shortest) with the warning signal 5 s before it, which SLURM sends up to a
    # minute early: anywhere in the job's first 55 s. Training stops after 55 s of training in all
    # (trainer.max_time, carried across attempts by the checkpoint), longer than one attempt can train before its
    # warning, however fast this machine is: the job is requeued at least once from a checkpoint taken mid-training.
    done = run(train_command(sweep, "debug=fast", "data=folder", f"data.root={data}", "epochs=100000",
                             "+trainer.max_time=00:00:00:55",
                             *launcher(partition, "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=5",
                                       "hydra.launcher.max_num_timeout=5")), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]

    job = sweep / "0"
    result = metrics(job)
    assert result["status"] == "completed" and 0.0 <= result["final"][TEST_ACC] <= 1.0
    epochs = [e["epoch"] for e in result["epochs"]]
    assert epochs == list(range(len(epochs))) and len(epochs) > 1  # every epoch recorded once, none lost
    assert all(e["seconds"] < 30 for e in result["epochs"])  # an epoch split by a requeue still times one epoch

    # One SLURM job, started again by SLURM under the same id; each attempt that reached training is recorded.
    (job_id,) = slurm_job_ids(sweep)
    state = slurm_state(job_id)
    assert state["JobState"] == "COMPLETED" and int(state["Restarts"]) >= 1
    attempts = result["attempts"]
    restarts = [a["restart"] for a in attempts]
    assert restarts == sorted(set(restarts)) and restarts[-1] == int(state["Restarts"]) and len(attempts) >= 2
    assert {a["slurm_job_id"] for a in attempts} == {job_id}
    assert all(a["outcome"] == "requeued" for a in attempts[:-1])
    assert "outcome" not in attempts[-1]  # the last attempt ran to the end: the run's status says how
    checkpointed = [a for a in attempts if a.get("checkpoint")]  # the warning came while it trained
    assert checkpointed and all(a["checkpoint"] == "checkpoints/requeue.ckpt" for a in checkpointed)
    assert all(0 < a["epochs_done"] < len(epochs) for a in checkpointed)
    log = (sweep / ".submitit" / job_id / f"{job_id}_0_log.err").read_text()
    assert "Caught signal SIGUSR2" in log and f"Restored all states from the checkpoint at {job}" in log
    assert not (job / "checkpoints" / "requeue.ckpt").exists()  # removed once training finished

    report = subprocess.run([sys.executable, "-m", "garbage_lit.report", str(sweep)], capture_output=True,
                            text=True, timeout=300)
    assert report.returncode == 0 and "1 of 1 jobs completed" in report.stdout, report.stderr[-2000:]


def test_a_job_requeued_mid_epoch_ends_exactly_as_one_never_stopped(partition, tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    # Two SLURM jobs of one command; job 0 gets SLURM's time-limit warning (submitit's SIGUSR2) after step 7, in
    # the middle of epoch 1 (fine-tuning with MixUp/CutMix and EMA), is requeued and resumes; job 1 runs through.
    done = run(train_command(sweep, "data=folder", f"data.root={data}", *FINETUNE, *STOPPER,
                             f"+callbacks.stopper.signal={int(signal.SIGUSR2)}", "+callbacks.stopper.step=7,100000",
                             *launcher(partition)), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    requeued, through = sweep / "0", sweep / "1"
    attempts = metrics(requeued)["attempts"]
    assert [a.get("outcome") for a in attempts] == ["requeued", None]
    assert attempts[0]["checkpoint"] == "checkpoints/requeue.ckpt" and attempts[0]["epochs_done"] == 1
    assert len(metrics(through)["attempts"]) == 1
    same_run(requeued, through)


def test_a_cancelled_job_is_recorded_failed_promptly_while_its_sibling_completes(partition, tmp_path):
    data = make_folder_dataset(tmp_path / "data")
    sweep = tmp_path / "sweep"
    # Two jobs of one array; job 1 is cancelled once it trains, job 0 trains on for 30 s (sacct reports the
    # cancellation within seconds).
    errors = tmp_path / "sweep.err"
    with errors.open("w") as stderr:
        submitter = subprocess.Popen(
            train_command(sweep, "debug=fast", "data=folder", f"data.root={data}", "epochs=100000",
                          "+trainer.max_time=00:00:00:30", "seed=0,1", *launcher(partition)),
            cwd=tmp_path, env=environment(tmp_path), stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ((sweep / "1" / "metrics.json").is_file() and metrics(sweep / "1").get("epochs")):
            assert submitter.poll() is None and time.monotonic() < deadline, "job 1 never started training"
            time.sleep(0.5)
        (job_id,) = [i for i in slurm_job_ids(sweep) if i.endswith("_1")]
        subprocess.run(["scancel", job_id], check=True, timeout=60)
        # The sweep records it failed as soon as sacct reports it, while job 0 is still training.
        while metrics(sweep / "1")["status"] != "failed" or "CANCELLED" not in metrics(sweep / "1")["error"]:
            assert submitter.poll() is None and time.monotonic() < deadline, "job 1 was never recorded failed"
            time.sleep(0.5)
        assert metrics(sweep / "0")["status"] == "running"
        submitter.wait(timeout=TIMEOUT)
    finally:
        submitter.kill()
    assert submitter.returncode != 0, "a sweep with a failed job must exit non-zero"
    assert f"SLURM job {job_id} ended CANCELLED" in errors.read_text()
    assert metrics(sweep / "0")["status"] == "completed"
    failed = metrics(sweep / "1")
    assert failed["error"].startswith(f"SlurmJobEnded: SLURM job {job_id} ended CANCELLED by ")
    assert "CANCELLED" in (sweep / "1" / "failure.log").read_text()
    assert slurm_state(job_id)["JobState"] == "CANCELLED"

    report = subprocess.run([sys.executable, "-m", "garbage_lit.report", str(sweep)], capture_output=True,
                            text=True, timeout=300)
    with (sweep / "jobs.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["job"], r["status"]) for r in rows] == [("0", "completed"), ("1", "failed")], report.stderr[-2000:]
    assert "CANCELLED" in rows[1]["error"]
