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
the temp dir), ``auth_token`` (created with mode 600, removed by ``down``) and one log per node.

Nothing in ``cluster.json`` is trusted on its word before a signal is sent or a folder deleted:
every node is checked to be the very process that was started (its exact command line and start
time), stray processes must carry this cluster's id in their environment
(``PAIRGRPO_CLUSTER_ID``, inherited by everything a node starts), and the temp dir is deleted only
if it holds the marker file with that id.

Where it listens (measured, docs/cluster.md): the dashboard and job server on 127.0.0.1 only; Ray's
GCS, raylets, agents, client server and metrics endpoints on all interfaces, because Ray resolves
``--node-ip-address=127.0.0.1`` to the machine's routable address and its gRPC servers bind
0.0.0.0. Token authentication guards Ray's RPCs; the Prometheus metrics endpoints answer without a
token. Every port is chosen per cluster (none of Ray's fixed defaults), so two clusters never
collide. On a machine reachable from a network, firewall it.
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
ID_VAR = "PAIRGRPO_CLUSTER_ID"
MARKER_FILE = ".pairgrpo_cluster_id"
TEMP_PREFIX = "pgc-"
DRAIN_SECONDS = 60.0  # a head node takes ~35 s to drain after SIGTERM (measured); workers ~2 s
LISTEN_NOTE = (
    "note: the dashboard/job server listens on 127.0.0.1 only; Ray's GCS, raylets, agents and metrics "
    "endpoints listen on all interfaces (token auth guards Ray's RPCs, not the metrics): firewall this "
    "machine if a network can reach it (docs/cluster.md)"
)


class ClusterError(RuntimeError):
    """The cluster could not be started, reached or stopped; the message says what to do."""


@dataclass
class Cluster:
    state_dir: str
    temp_dir: str
    gcs_port: int
    dashboard_port: int
    token_path: str
    cluster_id: str
    autoscaler_metrics_port: int
    dashboard_metrics_port: int
    node_pgids: list[int] = field(default_factory=list)
    node_argv: list[list[str]] = field(default_factory=list)
    node_start_times: list[int] = field(default_factory=list)
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
            # Ray's fixed metrics ports (44217, 44227) would collide between two clusters.
            AUTOSCALER_METRIC_PORT=str(self.autoscaler_metrics_port),
            DASHBOARD_METRIC_PORT=str(self.dashboard_metrics_port),
        )
        env[ID_VAR] = self.cluster_id
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
        """The cluster recorded in ``state_dir``, checked field by field (a stale or edited file is
        refused, never acted on)."""
        path = Path(state_dir) / STATE_FILE
        if not path.is_file():
            raise ClusterError(
                f"no cluster state in {state_dir}; start one with `pairgrpo cluster up --dir {state_dir}`"
            )
        damaged = (
            f"{path} is damaged or from an older version; if no cluster of it runs, delete the file and "
            "start a new one with `pairgrpo cluster up`"
        )
        try:
            data = json.loads(path.read_bytes().decode("utf-8"))
            cluster = cls(**data)
        except (OSError, ValueError, TypeError):
            raise ClusterError(damaged) from None
        ints = [
            cluster.gcs_port,
            cluster.dashboard_port,
            cluster.autoscaler_metrics_port,
            cluster.dashboard_metrics_port,
        ]
        ok = (
            all(isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ints)
            and isinstance(cluster.cluster_id, str)
            and len(cluster.cluster_id) == 32
            and all(isinstance(p, int) and p > 1 for p in cluster.node_pgids)
            and len(cluster.node_argv) == len(cluster.node_pgids) == len(cluster.node_start_times)
            and all(isinstance(a, list) and all(isinstance(x, str) for x in a) for a in cluster.node_argv)
            and isinstance(cluster.temp_dir, str)
            and Path(cluster.temp_dir).parent == Path("/tmp")
            and Path(cluster.temp_dir).name.startswith(TEMP_PREFIX)
            and Path(cluster.state_dir).resolve() == Path(state_dir).resolve()
            and Path(cluster.token_path) == Path(cluster.state_dir) / TOKEN_FILE
        )
        if not ok:
            raise ClusterError(damaged)
        return cluster


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


def _spawn(cluster: Cluster, cmd: list[str], env: dict, log: Path) -> None:
    """Start a node in its own process group and record who it is (pgid, exact argv, start time)."""
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # Wait for exec() to replace the forked child, so that /proc shows the node's own argv (the
    # `ray` script runs under its interpreter: argv ends with our command's arguments).
    deadline = time.time() + 10
    argv = _cmdline(proc.pid)
    while (not argv or argv[-len(cmd) + 1 :] != cmd[1:]) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
        argv = _cmdline(proc.pid)
    if not argv or argv[-len(cmd) + 1 :] != cmd[1:]:
        raise ClusterError(f"a node did not start (`{' '.join(cmd[:3])} ...`); see {log}")
    cluster.node_pgids.append(proc.pid)  # == its process group id (start_new_session)
    cluster.node_argv.append(argv)
    cluster.node_start_times.append(_start_time(proc.pid) or 0)
    cluster.save()


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22): with the pid it
    identifies one process (a pid can be reused, the pair cannot)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _is_node(cluster: Cluster, index: int) -> bool:
    """Node ``index`` still runs as the very process that was started (exact argv and start time)."""
    pid = cluster.node_pgids[index]
    return _cmdline(pid) == cluster.node_argv[index] and _start_time(pid) == cluster.node_start_times[index]


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def _owned_pids(cluster: Cluster, temp_dir_is_ours: bool = False) -> list[int]:
    """This cluster's processes: those whose environment carries its id (what ``ray start`` and the
    raylet start inherit it), and, once the temp dir is proven ours (its marker file), Ray's own
    programs (an executable of this Python installation) that were given a path inside it (the
    agents Ray starts with an environment of its own). A process that merely mentions the path, run
    by any other program, is not one of them."""
    needle = f"{ID_VAR}={cluster.cluster_id}".encode()
    inside = cluster.temp_dir.rstrip("/") + "/"
    prefixes = tuple({str(Path(p).resolve()) + "/" for p in (sys.prefix, sys.base_prefix)})
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                out.append(int(entry.name))
                continue
            if not temp_dir_is_ours:
                continue
            exe = os.path.realpath(entry / "exe")
            args = _cmdline(int(entry.name)) or []
        except OSError:
            continue
        if exe.startswith(prefixes) and any(inside in a for a in args[1:]):
            out.append(int(entry.name))
    return out


def _marker_ok(cluster: Cluster) -> bool:
    try:
        return (Path(cluster.temp_dir) / MARKER_FILE).read_text().strip() == cluster.cluster_id
    except OSError:
        return False


def _write_secret(path: Path, text: str) -> None:
    """Create ``path`` with mode 600 from the start (never briefly readable by others)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _wait_for_nodes(cluster: Cluster, count: int, timeout: float) -> None:
    """Poll the GCS until ``count`` nodes are alive (``ray list nodes`` through the CLI)."""
    env = cluster.env()
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        for i, pgid in enumerate(cluster.node_pgids):
            if not _is_node(cluster, i):
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
    if not 0 <= workers <= 64 or not 1 <= cpus_per_node <= 1024:
        raise ClusterError(
            f"workers={workers}, cpus_per_node={cpus_per_node}: use 0 <= workers <= 64 and 1 <= cpus <= 1024"
        )
    state = Path(state_dir).resolve()
    if (state / STATE_FILE).is_file():
        old = Cluster.load(state)
        if any(_is_node(old, i) for i in range(len(old.node_pgids))):
            raise ClusterError(
                f"a cluster from {state} is still running; stop it with `pairgrpo cluster down --dir {state}`"
            )
    try:
        state.mkdir(parents=True, exist_ok=True)
        token = state / TOKEN_FILE
        _write_secret(token, secrets.token_hex(32))
    except OSError as exc:
        raise ClusterError(
            f"--dir {str(state_dir)!r}: cannot write there ({exc.strerror}); choose a writable folder"
        ) from None
    # Short temp dir: Ray's Unix sockets live below it and socket paths are limited to ~107 bytes.
    temp_dir = tempfile.mkdtemp(prefix=TEMP_PREFIX, dir="/tmp")
    cluster_id = secrets.token_hex(16)
    (Path(temp_dir) / MARKER_FILE).write_text(cluster_id)
    gcs_port, dashboard_port, client_port, autoscaler_metrics, dashboard_metrics = _free_ports(5)
    cluster = Cluster(
        state_dir=str(state),
        temp_dir=temp_dir,
        gcs_port=gcs_port,
        dashboard_port=dashboard_port,
        token_path=str(token),
        cluster_id=cluster_id,
        autoscaler_metrics_port=autoscaler_metrics,
        dashboard_metrics_port=dashboard_metrics,
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
    cluster.save()
    try:
        _spawn(cluster, head, env, state / "head.log")
        _wait_for_nodes(cluster, 1, timeout)
        for i in range(workers):
            worker = [
                ray, "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                f"--address={cluster.address}", f"--num-cpus={cpus_per_node}", *_node_ports(taken),
            ]  # fmt: skip
            _spawn(cluster, worker, env, state / f"worker{i + 1}.log")
        _wait_for_nodes(cluster, 1 + workers, timeout)
    except BaseException:
        down(state)
        raise
    return cluster


def kill_node(cluster: Cluster, index: int, sig: int = signal.SIGKILL) -> None:
    """Kill node ``index`` (0 = head) and its process group: a node failure, for fault tests."""
    if _is_node(cluster, index):
        os.killpg(cluster.node_pgids[index], sig)


def down(state_dir: str | Path = DEFAULT_DIR, grace: float = DRAIN_SECONDS) -> dict:
    """Stop every process of the cluster in ``state_dir``.

    Each node gets SIGTERM (workers first) and up to ``grace`` seconds to drain and exit; a node
    still running then is killed. Processes a node leaves behind in its group (idle Ray workers,
    job drivers) get a few seconds more, then SIGKILL, as do strays outside the groups. Only
    processes proven to be this cluster's are signalled (see the module docstring).

    Returns ``{"nodes_killed": n, "leftovers_killed": [names]}``: nodes that did not drain in time,
    and the other processes that had to be killed.
    """
    cluster = Cluster.load(state_dir)
    nodes = [i for i in range(len(cluster.node_pgids)) if _is_node(cluster, i)]
    for i in reversed(nodes):  # workers first: they leave cleanly while the GCS still answers
        try:
            os.killpg(cluster.node_pgids[i], signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline and any(_is_node(cluster, i) for i in nodes):
        time.sleep(0.3)
    nodes_killed = 0
    for i in nodes:
        if _is_node(cluster, i):
            nodes_killed += 1
            os.killpg(cluster.node_pgids[i], signal.SIGKILL)
    # A verified node's group keeps its id while any member lives (Linux never hands a live group's
    # id to a new process), so its members are the node's own children even after the node exited.
    groups = [cluster.node_pgids[i] for i in nodes]
    deadline = time.time() + 5.0
    while time.time() < deadline and any(_group_alive(g) for g in groups):
        time.sleep(0.3)
    ours = _marker_ok(cluster)
    leftovers = [pid for pid in _all_pids() if _pgid(pid) in groups]
    leftovers += [pid for pid in _owned_pids(cluster, temp_dir_is_ours=ours) if pid not in leftovers]
    names = []
    for pid in leftovers:
        names.append(" ".join((_cmdline(pid) or ["?"])[:2])[:80])
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if ours:
        shutil.rmtree(cluster.temp_dir, ignore_errors=True)
    Path(cluster.token_path).unlink(missing_ok=True)
    (Path(state_dir) / STATE_FILE).unlink(missing_ok=True)
    return {"nodes_killed": nodes_killed, "leftovers_killed": names}


def _all_pids() -> list[int]:
    """Every live process but this one (zombies, dead and waiting to be reaped, are not live)."""
    out = []
    for e in Path("/proc").iterdir():
        if not e.name.isdigit() or int(e.name) == os.getpid():
            continue
        try:
            state = (e / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            out.append(int(e.name))
    return out


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def status(state_dir: str | Path = DEFAULT_DIR) -> dict:
    cluster = Cluster.load(state_dir)
    return {
        "address": cluster.address,
        "dashboard": cluster.dashboard_url,
        "nodes": len(cluster.node_pgids),
        "alive": [_is_node(cluster, i) for i in range(len(cluster.node_pgids))],
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
