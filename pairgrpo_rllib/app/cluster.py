"""``pairgrpo cluster``: a real multi-node Ray cluster on this machine, on loopback.

The topology of ``docker/docker-compose.yml`` (a head node and N worker nodes, token authentication,
dashboard and job server on 127.0.0.1) without containers: each node is its own ``ray start --block``
process in its own process group, with its own ports, all sharing one temp dir and one token file
kept in the cluster's state folder. ``down`` stops exactly the processes this cluster started (its
process groups, then anything still running whose command line names its temp dir); it never runs
``ray stop``, which would end every Ray process of every user on the machine.

    pairgrpo cluster up [--dir DIR] [--workers N] [--cpus-per-node C]
    pairgrpo cluster env [--dir DIR]          # shell exports for `ray job submit` against it
    pairgrpo cluster status [--dir DIR]
    pairgrpo cluster down [--dir DIR]

The state folder (default ``results/local_cluster``) holds ``cluster.json`` (ports, process groups,
the temp dir), ``auth_token`` (mode 600) and one log per node.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

DEFAULT_DIR = Path("results") / "local_cluster"
STATE_FILE = "cluster.json"
TOKEN_FILE = "auth_token"


class ClusterError(RuntimeError):
    """The cluster could not be started, reached or stopped; the message says what to do."""


@dataclass
class Cluster:
    state_dir: str
    temp_dir: str
    gcs_port: int
    dashboard_port: int
    token_path: str
    node_pgids: list[int] = field(default_factory=list)
    cpus_per_node: int = 1

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self, base: dict | None = None) -> dict:
        """The environment every node, driver and `ray job` client of this cluster uses."""
        env = dict(os.environ if base is None else base)
        env.update(
            RAY_AUTH_MODE="token",
            RAY_AUTH_TOKEN_PATH=self.token_path,
            RAY_ADDRESS=self.address,
            RAY_API_SERVER_ADDRESS=self.dashboard_url,
            OMP_NUM_THREADS="1",
            MKL_NUM_THREADS="1",
        )
        env.pop("RAY_AUTH_TOKEN", None)  # the token file is the one source
        bindir = str(Path(sys.executable).parent)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
        return env

    def save(self) -> None:
        path = Path(self.state_dir) / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)

    @classmethod
    def load(cls, state_dir: str | Path) -> Cluster:
        path = Path(state_dir) / STATE_FILE
        if not path.is_file():
            raise ClusterError(
                f"no cluster state in {state_dir}; start one with `pairgrpo cluster up --dir {state_dir}`"
            )
        return cls(**json.loads(path.read_text()))


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _ray_exe() -> str:
    exe = Path(sys.executable).parent / "ray"
    if not exe.is_file():
        raise ClusterError(f"the `ray` command is not next to {sys.executable}; install ray[default] there")
    return str(exe)


WORKER_PORTS = 100  # per node: Ray's worker processes each take one


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _worker_port_range(taken: set[int]) -> tuple[int, int]:
    """A free block of ports below the kernel's ephemeral range (32768+), where the single ports
    come from, so the two never overlap; ``taken`` holds the blocks of this cluster's other nodes."""
    rng = random.Random()
    lows = list(range(20000, 32768 - WORKER_PORTS, WORKER_PORTS))
    rng.shuffle(lows)
    for low in lows:
        block = range(low, low + WORKER_PORTS)
        if not taken.intersection(block) and all(_bindable(p) for p in block):
            taken.update(block)
            return low, low + WORKER_PORTS - 1
    raise ClusterError("no free block of worker ports between 20000 and 32767; free some ports and retry")


def _node_ports(taken: set[int]) -> list[str]:
    node_manager, object_manager, agent_listen, agent_grpc, metrics, runtime_env = _free_ports(6)
    low, high = _worker_port_range(taken)
    return [
        f"--node-manager-port={node_manager}",
        f"--object-manager-port={object_manager}",
        f"--dashboard-agent-listen-port={agent_listen}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--metrics-export-port={metrics}",
        f"--runtime-env-agent-port={runtime_env}",
        f"--min-worker-port={low}",
        f"--max-worker-port={high}",
    ]


def _spawn(cmd: list[str], env: dict, log: Path) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    return proc.pid  # == its process group id (start_new_session)


def _wait_for_nodes(cluster: Cluster, count: int, timeout: float) -> None:
    """Poll the GCS until ``count`` nodes are alive (``ray list nodes`` through the CLI)."""
    env = cluster.env()
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        for pgid in cluster.node_pgids:
            if not _group_alive(pgid):
                raise ClusterError(
                    f"a node process (pgid {pgid}) exited during start-up; see the logs in {cluster.state_dir}"
                )
        res = subprocess.run(
            [_ray_exe(), "list", "nodes", "--address", cluster.address, "--format", "json", "--limit", "100"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        last = res.stderr.strip().splitlines()[-1:] if res.returncode else ""
        if res.returncode == 0:
            try:
                nodes = json.loads(res.stdout)
            except json.JSONDecodeError:
                nodes = []
            if sum(n.get("state") == "ALIVE" for n in nodes) >= count:
                return
        time.sleep(1.0)
    raise ClusterError(
        f"{count} nodes did not come up within {timeout:.0f} s ({last}); see {cluster.state_dir}"
    )


def up(
    state_dir: str | Path = DEFAULT_DIR, workers: int = 1, cpus_per_node: int = 1, timeout: float = 120
) -> Cluster:
    """Start a head node and ``workers`` worker nodes; returns when all are alive."""
    if workers < 0 or cpus_per_node < 1:
        raise ClusterError(
            f"workers={workers}, cpus_per_node={cpus_per_node}: use workers >= 0 and cpus >= 1"
        )
    state = Path(state_dir).resolve()
    if (state / STATE_FILE).is_file():
        old = Cluster.load(state)
        if any(_group_alive(p) for p in old.node_pgids):
            raise ClusterError(
                f"a cluster from {state} is still running; stop it with `pairgrpo cluster down --dir {state}`"
            )
    state.mkdir(parents=True, exist_ok=True)
    token = state / TOKEN_FILE
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    # Short temp dir: Ray's Unix sockets live below it and socket paths are limited to ~107 bytes.
    temp_dir = tempfile.mkdtemp(prefix="pgc-", dir="/tmp")
    gcs_port, dashboard_port, client_port = _free_ports(3)
    cluster = Cluster(
        state_dir=str(state),
        temp_dir=temp_dir,
        gcs_port=gcs_port,
        dashboard_port=dashboard_port,
        token_path=str(token),
        cpus_per_node=cpus_per_node,
    )
    env = cluster.env()
    env.pop("RAY_ADDRESS")  # `ray start` must not try to join a cluster named in the environment
    ray = _ray_exe()
    taken: set[int] = set()
    head = [
        ray, "start", "--head", "--block", "--disable-usage-stats",
        "--node-ip-address=127.0.0.1", f"--port={gcs_port}", f"--temp-dir={temp_dir}",
        "--include-dashboard=true", "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={client_port}", f"--num-cpus={cpus_per_node}", *_node_ports(taken),
    ]  # fmt: skip
    cluster.node_pgids.append(_spawn(head, env, state / "head.log"))
    cluster.save()
    try:
        _wait_for_nodes(cluster, 1, timeout)
        for i in range(workers):
            worker = [
                ray, "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                f"--address={cluster.address}", f"--num-cpus={cpus_per_node}", *_node_ports(taken),
            ]  # fmt: skip
            cluster.node_pgids.append(_spawn(worker, env, state / f"worker{i + 1}.log"))
            cluster.save()
        _wait_for_nodes(cluster, 1 + workers, timeout)
    except BaseException:
        down(state)
        raise
    return cluster


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _pids_naming(text: str) -> list[int]:
    """Processes (of any group) whose command line contains ``text``: what a node left behind."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            out.append(int(entry.name))
    return out


def kill_node(cluster: Cluster, index: int, sig: int = signal.SIGKILL) -> None:
    """Kill node ``index`` (0 = head) and its process group: a node failure, for fault tests."""
    pgid = cluster.node_pgids[index]
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def down(state_dir: str | Path = DEFAULT_DIR, grace: float = 15.0) -> int:
    """Stop every process of the cluster in ``state_dir``; returns how many were still alive."""
    cluster = Cluster.load(state_dir)
    # Workers first, then the head: workers leave cleanly while the GCS still answers.
    for pgid in reversed(cluster.node_pgids):
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline and any(_group_alive(p) for p in cluster.node_pgids):
        time.sleep(0.3)
    stragglers = 0
    for pgid in cluster.node_pgids:
        if _group_alive(pgid):
            stragglers += 1
            os.killpg(pgid, signal.SIGKILL)
    # Processes that left the node's group (daemonised helpers) still name the cluster's temp dir.
    for pid in _pids_naming(cluster.temp_dir):
        stragglers += 1
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    (Path(state_dir) / STATE_FILE).unlink(missing_ok=True)
    return stragglers


def status(state_dir: str | Path = DEFAULT_DIR) -> dict:
    cluster = Cluster.load(state_dir)
    return {
        "address": cluster.address,
        "dashboard": cluster.dashboard_url,
        "nodes": len(cluster.node_pgids),
        "alive": [_group_alive(p) for p in cluster.node_pgids],
        "temp_dir": cluster.temp_dir,
    }


def shell_exports(cluster: Cluster) -> str:
    return "\n".join(
        f"export {k}={v}"
        for k, v in (
            ("RAY_AUTH_MODE", "token"),
            ("RAY_AUTH_TOKEN_PATH", cluster.token_path),
            ("RAY_ADDRESS", cluster.address),
            ("RAY_API_SERVER_ADDRESS", cluster.dashboard_url),
        )
    )
