"""examples/deploy/: the app runs under both interfaces, and the commands in the Dockerfile and
the systemd unit are valid ``microweb serve`` command lines."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import load_example

from microweb import App
from microweb._cli import _parser
from microweb.testing import TestClient

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "examples" / "deploy"


def _deploy_app() -> App:
    app: App = load_example("deploy/app.py", "deploy_example_app").app
    return app


def test_the_deploy_app_answers_and_reports_health(
    interface: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALLOWED_HOSTS", raising=False)
    app = _deploy_app()
    with TestClient(app, interface=interface, base_url="http://localhost:8000") as client:
        assert client.get("/").text == "Hello from http://localhost:8000/"
        response = client.get("/healthz", headers={"host": "127.0.0.1:8000"})
        assert response.json() == {"healthy": True}
        assert "x-request-id" in response.headers
        # NOTE: the test client's own host is no host the example answers for.
        assert client.get("/", headers={"host": "testserver"}).status_code == 400
    assert app.state.healthy is False  # NOTE: the shutdown hook ran.


def test_the_deploy_app_answers_for_the_hosts_of_its_environment(
    interface: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_HOSTS", "example.com,*.example.com")
    with TestClient(_deploy_app(), interface=interface) as client:
        assert client.get("/", headers={"host": "www.example.com"}).status_code == 200
        assert client.get("/", headers={"host": "localhost"}).status_code == 400


def _serve_arguments(command: list[str]) -> list[str]:
    assert Path(command[0]).name == "microweb", command
    return command[1:]


def test_the_dockerfile_runs_a_valid_serve_command() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    (cmd,) = [line for line in lines if line.startswith("CMD ")]
    args = _parser().parse_args(_serve_arguments(json.loads(cmd[len("CMD ") :])))
    assert (args.command, args.target, args.host) == ("serve", "app:app", "0.0.0.0")
    assert args.graceful_timeout < 10  # NOTE: docker stop sends SIGKILL 10 s after SIGTERM.


def test_the_systemd_unit_runs_a_valid_serve_command() -> None:
    # NOTE: systemd joins a line that ends in a backslash to the next.
    lines = (DEPLOY / "microweb.service").read_text().replace("\\\n", " ").splitlines()
    (exec_start,) = [line for line in lines if line.startswith("ExecStart=")]
    args = _parser().parse_args(_serve_arguments(shlex.split(exec_start[len("ExecStart=") :])))
    (stop,) = [line for line in lines if line.startswith("TimeoutStopSec=")]
    assert args.command == "serve"
    assert args.graceful_timeout < int(stop.partition("=")[2])
    # NOTE: behind nginx.conf's proxy on this host; without it, the app took every request for
    # one from 127.0.0.1 over plain HTTP (redirects and Secure cookies went wrong).
    assert (args.host, args.port, args.forwarded_allow_ips) == ("127.0.0.1", 8000, "127.0.0.1")
    assert "server 127.0.0.1:8000;" in (DEPLOY / "nginx.conf").read_text()


def test_the_systemd_unit_runs_the_app_as_a_user_of_its_own() -> None:
    # NOTE: it ran as www-data, the user of nginx's workers on Debian: a flaw in either could
    # then write what the other serves or keeps.
    unit = (DEPLOY / "microweb.service").read_text().splitlines()
    (user,) = [line.partition("=")[2] for line in unit if line.startswith("User=")]
    (group,) = [line.partition("=")[2] for line in unit if line.startswith("Group=")]
    assert user not in {"root", "www-data", "nginx", "nobody"}
    assert group not in {"root", "www-data", "nginx", "nogroup", "nobody"}


def test_the_systemd_unit_says_how_to_write_files_under_protect_system_strict() -> None:
    # NOTE: under ProtectSystem=strict an app that writes a database or uploads (the tutorial's
    # notes app) fails with "Read-only file system" unless the unit gives it a folder.
    unit = (DEPLOY / "microweb.service").read_text()
    assert "ProtectSystem=strict" in unit
    assert "StateDirectory=" in unit and "ReadWritePaths=" in unit


def test_the_dockerfile_copies_every_file_the_build_reads() -> None:
    # NOTE: without LICENSE (license-files), setuptools built the image's wheel without the
    # license and warned "Pattern 'LICENSE' did not match any files", an error from 2027 on.
    tomllib = pytest.importorskip("tomllib")  # NOTE: Python 3.11 and later.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    needed = {"pyproject.toml", project["readme"], *project["license-files"]}
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    install = next(i for i, line in enumerate(lines) if line.startswith("RUN pip install"))
    copied = {
        source
        for line in lines[:install]
        if line.startswith("COPY ")
        for source in line.split()[1:-1]
    }
    assert needed <= copied
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert {f"!{name}" for name in needed} <= set(ignore)


def _docker_runs() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        return False
    return info.returncode == 0


@pytest.mark.servers
@pytest.mark.skipif(not _docker_runs(), reason="no docker daemon here")
def test_the_dockerfile_builds(tmp_path: Path) -> None:
    # NOTE: a context with only what the Dockerfile copies, whichever builder docker has (the
    # legacy one ignores Dockerfile.dockerignore).
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    shutil.copy(ROOT / "README.md", tmp_path)
    shutil.copy(ROOT / "LICENSE", tmp_path)
    shutil.copytree(
        ROOT / "microweb", tmp_path / "microweb", ignore=shutil.ignore_patterns("__pycache__")
    )
    (tmp_path / "examples" / "deploy").mkdir(parents=True)
    shutil.copy(DEPLOY / "app.py", tmp_path / "examples" / "deploy")
    tag = "microweb-deploy-example:test"
    build = ["docker", "build", "--quiet", "-f", str(DEPLOY / "Dockerfile"), "-t", tag]
    result = subprocess.run(
        [*build, str(tmp_path)], capture_output=True, text=True, timeout=600, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    imports = ["python", "-c", "import microweb, waitress, uvicorn, app"]
    check = subprocess.run(
        ["docker", "run", "--rm", tag, *imports],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
