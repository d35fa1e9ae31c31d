"""What a `pairgrpo cluster` listens on, measured: every listening TCP socket of the cluster's processes.

Starts a head and one worker (`pairgrpo_rllib.app.cluster.up`), lists the listening sockets of every
process that carries the cluster's id (`ss -ltnpH`), classifies each bind address (loopback only /
all interfaces / the machine's routable address), and for sockets reachable on loopback sends one
HTTP GET without the token to 127.0.0.1 (never to another address) to see whether it answers. Then
stops the cluster. Run by hand; the table goes to docs/cluster.md:

    .venv/bin/python benchmarks/cluster_ports.py --out docs/data/cluster_ports.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from pairgrpo_rllib.app import cluster as K


def _scope(addr: str) -> str:
    host = addr.rsplit(":", 1)[0].strip("[]")
    if host in ("127.0.0.1", "::1", "::ffff:127.0.0.1"):
        return "loopback only"
    if host in ("0.0.0.0", "*", "::"):
        return "all interfaces"
    return "routable address"


def _probe(port: int, path: str = "/") -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as res:
            return f"HTTP {res.status} without token"
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code} without token"
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return f"no HTTP answer ({type(reason).__name__})"


def _role(cluster: K.Cluster, port: int, name: str) -> str:
    known = {
        cluster.gcs_port: "GCS",
        cluster.dashboard_port: "dashboard + job server",
        cluster.autoscaler_metrics_port: "autoscaler metrics (Prometheus)",
        cluster.dashboard_metrics_port: "dashboard metrics (Prometheus)",
    }
    if port in known:
        return known[port]
    for argv in cluster.node_argv:
        for arg in argv:
            m = re.match(r"--([a-z-]+)=(\d+)$", arg)
            if m and int(m.group(2)) == port:
                return m.group(1).removesuffix("-port")
    return name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=None, help="write the rows as JSON here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pgc-ports-"))
    cluster = K.up(work / "cluster", workers=1, cpus_per_node=1)
    rows = []
    try:
        owned = set(K._owned_pids(cluster))
        # and everything in the nodes' process groups (Ray starts its agents with an environment of
        # its own, without the cluster's id; they stay in the node's group)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) in cluster.node_pgids:
                        owned.add(int(entry.name))
                except OSError:
                    pass
        listing = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
        for line in listing.splitlines():
            pids = {int(p) for p in re.findall(r"pid=(\d+)", line)}
            if not pids & owned:
                continue
            addr = line.split()[3]
            port = int(addr.rsplit(":", 1)[1])
            name = (re.findall(r'\("([^"]+)"', line) or ["?"])[0]
            scope = _scope(addr)
            answer = _probe(port) if scope != "routable address" else "not probed (not on loopback)"
            if port == cluster.dashboard_port:
                answer = f"/: {answer}; /api/jobs/: {_probe(port, '/api/jobs/')}"
            rows.append(
                {
                    "process": name,
                    "role": _role(cluster, port, name),
                    "bind": addr,
                    "scope": scope,
                    "answer": answer,
                }
            )
    finally:
        K.down(work / "cluster")
    rows.sort(key=lambda r: (r["scope"], r["process"], r["role"]))
    print("| process | role | bound to | scope | plain HTTP GET without the token |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['process']} | {r['role']} | `{r['bind']}` | {r['scope']} | {r['answer']} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
