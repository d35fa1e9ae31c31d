"""Peak memory (RSS summed over every process of the run: driver, raylet, GCS, Tune trial actors).

Runs ``pairgrpo sweep CONFIG`` in its own session and samples the RSS of all processes of that
session every 0.25 s. Usage:
``.venv/bin/python benchmarks/memory.py tune_configs/smoke.yaml [--set ...] [--out docs/data/memory.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def session_rss(sid: int) -> tuple[int, int]:
    """Sum of RSS and of PSS (bytes) of the processes whose session id is ``sid`` (Linux /proc).

    RSS counts shared pages (torch's libraries, mapped by every Ray worker) once per process; PSS
    splits them between the processes that share them, so its sum is the memory the run occupies.
    """
    total = pss = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[3]) != sid:  # field 6 of stat: session id
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            with open(f"/proc/{entry}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return total, pss


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    out_dir = tempfile.mkdtemp(prefix="pairgrpo-mem-")
    exe = shutil.which("pairgrpo") or os.path.join(os.path.dirname(sys.executable), "pairgrpo")
    cmd = [exe, "sweep", args.config, "--output", out_dir, "--no-report"] + [f"--set={s}" for s in args.set]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = peak_pss = 0
    t0 = time.time()
    while proc.poll() is None:
        rss, pss = session_rss(proc.pid)
        peak, peak_pss = max(peak, rss), max(peak_pss, pss)
        time.sleep(0.25)
    result = {
        "config": args.config,
        "overrides": args.set,
        "peak_rss_sum_gib": peak / 2**30,
        "peak_pss_sum_gib": peak_pss / 2**30,
        "wall_s": time.time() - t0,
        "returncode": proc.returncode,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
