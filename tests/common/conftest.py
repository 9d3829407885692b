"""A real one-node SLURM cluster for the launcher tests: the `slurm_cluster` fixture.

munged, slurmctld and slurmd (Debian's `munge`, `slurmctld`, `slurmd`, `slurm-client`, installed by
tools/install.sh) run as daemons under a temporary folder with their own munge key, socket, ports, state and
logs, so the host's own Slurm or munge set-up is neither read nor touched. The one node is this host with its
real CPUs and memory (`slurmd -C`), in one partition. select/cons_tres with cores as the only consumable
resource, proctrack/linuxproc and task/none: no cgroups and no systemd are needed, so it runs in a container.
There is no accounting database (slurmdbd), so `sacct` is off; the controller records every finished job in a
job-completion file instead (jobcomp/filetxt), which `SlurmCluster.finished_jobs` reads.

If the cluster cannot start (not root, a binary missing, a daemon that exits, a node that never turns idle)
every test using the fixture is skipped with a reason naming what is missing. Nothing is simulated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pytest

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sinfo", "squeue", "sbatch", "srun", "scancel", "scontrol")
DEBIAN_PACKAGES = "munge slurmctld slurmd slurm-client"
PARTITION = "paperclub"
START_TIMEOUT_S = 30.0


class ClusterUnavailable(RuntimeError):
    """The local cluster cannot run here; the message says what is missing."""


@dataclasses.dataclass
class SlurmCluster:
    """A running one-node cluster: `node` in partition `partition`, configured by `conf`, state under `root`."""

    root: Path
    conf: Path
    node: str
    partition: str
    cpus: int
    memory_mb: int
    processes: dict[str, subprocess.Popen] = dataclasses.field(default_factory=dict)

    @property
    def munge_key(self) -> Path:
        return self.root / "munge.key"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge.socket"

    @property
    def jobcomp(self) -> Path:
        """The controller's job-completion file: one `JobId=... JobState=...` line per finished job."""
        return self.root / "jobcomp.txt"

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """`base` (default os.environ) pointed at this cluster: SLURM_CONF set, any other SLURM_* dropped (so a
        test run inside a real SLURM job does not leak that job's variables into sbatch)."""
        env = {k: v for k, v in (os.environ if base is None else base).items() if not k.startswith("SLURM_")}
        env["SLURM_CONF"] = str(self.conf)
        return env

    def run(self, *command: str, timeout: float = 20.0) -> subprocess.CompletedProcess:
        """A client command (`sinfo`, `squeue`, ...) against this cluster."""
        return subprocess.run(command, env=self.environ(), capture_output=True, text=True, timeout=timeout)

    def finished_jobs(self, job_ids: Iterable[str], timeout: float = 30.0) -> dict[str, dict[str, str]]:
        """The controller's records of `job_ids` (`<job id>` or `<array job id>_<task id>`) as
        `{id: fields of its jobcomp line}` (JobState, Partition, NodeList, ExitCode, ...), waiting up to
        `timeout` s for jobs still completing; a job not recorded by then is left out."""
        job_ids = list(job_ids)
        deadline = time.monotonic() + timeout
        while True:
            jobs = self._jobcomp_records()
            if all(i in jobs for i in job_ids) or time.monotonic() > deadline:
                return {i: jobs[i] for i in job_ids if i in jobs}
            time.sleep(0.2)

    def _jobcomp_records(self) -> dict[str, dict[str, str]]:
        jobs = {}
        lines = self.jobcomp.read_text().splitlines() if self.jobcomp.exists() else []
        for line in lines:
            fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
            if "JobId" in fields:
                jobs[fields["JobId"]] = fields
            if "ArrayJobId" in fields and "ArrayTaskId" in fields:
                jobs[f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}"] = fields
        return jobs

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last lines of a daemon's log (`munged`, `slurmctld`, `slurmd`)."""
        path = self.root / f"{name}.log"
        text = path.read_text(errors="replace").splitlines() if path.exists() else ["(no log)"]
        return "\n".join(text[-lines:])


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running local cluster for the whole session, torn down (jobs cancelled, daemons stopped, state
    removed) at its end; the test is skipped with the reason when one cannot start here."""
    root = Path(tempfile.mkdtemp(prefix="paperclub-slurm-"))
    cluster = None
    try:
        cluster = configure_cluster(root)
        start_daemons(cluster)
    except ClusterUnavailable as err:
        _stop(cluster, root)
        pytest.skip(f"no local SLURM cluster: {err}")
    try:
        yield cluster
    finally:
        _stop(cluster, root)


def configure_cluster(root: Path) -> SlurmCluster:
    """Check that a cluster can run here; write its slurm.conf and munge key under `root`."""
    _check_can_run()
    cpus, memory_mb = _hardware()
    root.chmod(0o755)  # munged wants every folder above its socket searchable by all
    cluster = SlurmCluster(root=root, conf=root / "slurm.conf", node=socket.gethostname().split(".")[0],
                           partition=PARTITION, cpus=cpus, memory_mb=memory_mb)
    key = cluster.munge_key
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    for folder in ("ctld", "spool"):
        (root / folder).mkdir()
    cluster.conf.write_text(_slurm_conf(cluster, _free_port(), _free_port()))
    return cluster


def start_daemons(cluster: SlurmCluster) -> None:
    """Start munged, slurmctld and slurmd (each waited for), until `sinfo` shows the node idle."""
    root, sock = cluster.root, cluster.munge_socket
    _start(cluster, "munged", ["munged", "--foreground", f"--socket={sock}", f"--key-file={cluster.munge_key}",
                               f"--pid-file={root / 'munged.pid'}", f"--seed-file={root / 'munged.seed'}"])
    _wait(cluster, "munged", sock.exists, "its socket to appear")
    _start(cluster, "slurmctld", ["slurmctld", "-D", "-c", "-f", str(cluster.conf)])
    _wait(cluster, "slurmctld", lambda: "UP" in cluster.run("scontrol", "ping").stdout,
          "`scontrol ping` to answer UP")
    _start(cluster, "slurmd", ["slurmd", "-D", "-f", str(cluster.conf), "-N", cluster.node])
    _wait(cluster, "slurmd", lambda: _node_state(cluster) == "idle", f"`sinfo` to show node {cluster.node} idle")


def _check_can_run() -> None:
    missing = [name for name in (*DAEMONS, *CLIENTS) if shutil.which(name) is None]
    if missing:
        raise ClusterUnavailable(f"{', '.join(missing)} not found on PATH (Debian packages {DEBIAN_PACKAGES}; "
                                 "tools/install.sh installs them when run as root)")
    if os.geteuid() != 0:
        raise ClusterUnavailable("slurmd must run as root (it starts each job as its submitting user)")


def _hardware() -> tuple[int, int]:
    """(CPUs, RealMemory in MiB) of this host as slurmd itself counts them (`slurmd -C`)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=20)
    fields = dict(item.split("=", 1) for item in out.stdout.split() if "=" in item)
    try:
        return int(fields["CPUs"]), int(fields["RealMemory"])
    except (KeyError, ValueError):
        raise ClusterUnavailable(f"`slurmd -C` did not report CPUs and RealMemory: {out.stdout or out.stderr!r}") \
            from None


def _slurm_conf(cluster: SlurmCluster, ctld_port: int, slurmd_port: int) -> str:
    root = cluster.root
    return f"""\
ClusterName=paperclub-test
SlurmctldHost={cluster.node}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={cluster.munge_socket}
StateSaveLocation={root / 'ctld'}
SlurmdSpoolDir={root / 'spool'}
SlurmctldPidFile={root / 'slurmctld.pid'}
SlurmdPidFile={root / 'slurmd.pid'}
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={cluster.jobcomp}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
MailProg=/bin/true
NodeName={cluster.node} NodeAddr=127.0.0.1 CPUs={cluster.cpus} RealMemory={cluster.memory_mb} State=UNKNOWN
PartitionName={cluster.partition} Nodes={cluster.node} Default=YES MaxTime=INFINITE State=UP
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(cluster: SlurmCluster, name: str, command: list[str]) -> None:
    """Start a daemon in the foreground, in its own session; in the foreground all three log to stderr."""
    with open(cluster.root / f"{name}.log", "ab") as log:
        cluster.processes[name] = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                   env=cluster.environ(), start_new_session=True)


def _wait(cluster: SlurmCluster, name: str, ready: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if cluster.processes[name].poll() is not None:
            raise ClusterUnavailable(f"{name} exited with status {cluster.processes[name].returncode}:\n"
                                     f"{cluster.log_tail(name)}")
        with contextlib.suppress(subprocess.TimeoutExpired):  # a client that timed out: not ready yet
            if ready():
                return
        time.sleep(0.2)
    raise ClusterUnavailable(f"{name} started but {what} did not happen within {START_TIMEOUT_S:.0f}s:\n"
                             f"{cluster.log_tail(name)}")


def _node_state(cluster: SlurmCluster) -> str:
    out = cluster.run("sinfo", "--noheader", "--Node", "--format=%N %T")
    states = dict(line.split() for line in out.stdout.splitlines() if len(line.split()) == 2)
    return states.get(cluster.node, "").rstrip("*~#!%$@^-")


def _stop(cluster: SlurmCluster | None, root: Path) -> None:
    """Cancel this cluster's jobs, stop its daemons (slurmd, slurmctld, munged) by pid, remove its folder."""
    if cluster is not None and _running(cluster, "slurmctld"):
        with contextlib.suppress(subprocess.TimeoutExpired):
            jobs = cluster.run("squeue", "--noheader", "--format=%i").stdout.split()
            if jobs:
                cluster.run("scancel", *jobs)
                deadline = time.monotonic() + 10
                while cluster.run("squeue", "--noheader").stdout.strip() and time.monotonic() < deadline:
                    time.sleep(0.5)
    for name in reversed(DAEMONS):
        if cluster is None or not _running(cluster, name):
            continue
        process = cluster.processes[name]
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    shutil.rmtree(root, ignore_errors=True)


def _running(cluster: SlurmCluster, name: str) -> bool:
    return name in cluster.processes and cluster.processes[name].poll() is None
