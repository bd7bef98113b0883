"""Integration tests run against a real Docker engine (installed and started by .ci/run).

Without an engine they skip locally with a loud reason; in CI (CI=true) they fail instead.
Stand-in images are built once, cached by content (tests/standins/build.sh). Each fixture here is
made once per worker (pytest-xdist); what must happen once per run goes through proof.harness.run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.identity import PROJECT_DIR
from proof.harness.cli import DOCKER, TEST_LABEL, docker, until
from proof.harness.figures import report
from proof.harness.machine import MachineProblem, host_address
from proof.harness.run import WORKER, claim_port, engine_problem, once_per_run, remove_labelled, run_lock
from proof.harness.stacks import Deployed
from proof.harness.standins import APP_DIR, Build, Standins, build_image
from proof.mocks import TEST_SECRETS


@pytest.fixture(scope="session")
def engine() -> None:
    problem = engine_problem()
    if problem is None:
        once_per_run("clear-an-earlier-run", clear_an_earlier_run)
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the Docker tests, but {problem}", pytrace=False)
    pytest.skip(f"!!! SKIPPING DOCKER TESTS: {problem}. Start dockerd to run them (CI always does). !!!")


def clear_an_earlier_run() -> None:
    """What an interrupted run left beside the stacks (its objects carry the suite's label; the test
    swarm its folder): removed before anything is deployed. An interrupted run's stacks are not
    removed here (a developer's own stacks carry the same labels): `pulumi destroy` them, or run
    the suite on an engine of its own, as .ci/run does (tests/engine.sh)."""
    left = remove_labelled()
    if left:
        report(f"removed what an earlier run left on the engine: {len(left)} objects")
    if Path("/tmp/icb-swarm").exists():
        down = subprocess.run(["bash", str(PROJECT_DIR / "tests" / "swarm" / "down.sh")], capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip
        assert down.returncode == 0, f"removing an earlier run's test swarm failed:\n{down.stdout}{down.stderr}"
        report("removed an earlier run's test swarm")


@pytest.fixture(scope="session")
def standins(engine: None) -> Standins:
    try:
        with run_lock("standins"):  # one worker builds them; the others then find them built
            return Standins.build()
    except RuntimeError as failure:
        pytest.fail(str(failure), pytrace=False)


@dataclass(frozen=True)
class Bucket:
    """An S3-compatible bucket off the stacks' networks: `rclone serve s3` on the host's network,
    which the stacks' containers reach through their gateway, as they would a bucket elsewhere."""

    container: str
    endpoint: str
    name: str = "icb-test-backups"

    def settings(self) -> dict[str, str]:
        return {"backupOffsiteEndpoint": self.endpoint, "backupOffsiteBucket": self.name}

    def objects(self, prefix: str) -> dict[str, str]:
        """The objects under `prefix`, by name, with the SHA-256 of their bytes as the bucket holds them."""
        folder = f"/srv/{self.name}/{prefix}"
        script = f'cd "{folder}" 2>/dev/null || exit 0; for f in *; do [ ! -e "$f" ] || sha256sum "$f"; done'
        listed = docker("exec", self.container, "sh", "-c", script)
        return {name: digest for digest, name in (line.split() for line in listed.stdout.splitlines())}


@pytest.fixture(scope="session")
def offsite_bucket(standins: Standins) -> Iterator[Bucket]:
    # The default bridge's address on the host: every container on the engine can reach it.
    try:
        gateway = host_address([DOCKER])
    except MachineProblem as problem:
        pytest.fail(f"the stand-in bucket needs the host's address on the default bridge: {problem}", pytrace=False)
    port = claim_port()
    container = f"icb-test-offsite-bucket-{WORKER}"
    docker("rm", "-f", container, check=False)
    docker(
        "run", "-d", "--name", container, "--label", TEST_LABEL, "--network", "host",
        # The keys in the environment of this stand-in bucket only, not on its command line.
        "-e", f"BUCKET_KEYS={TEST_SECRETS['backupOffsiteAccessKeyId']},{TEST_SECRETS['backupOffsiteSecretAccessKey']}",
        "--entrypoint", "sh", standins.rclone, "-c",
        f'mkdir -p "/srv/{Bucket.name}" && exec rclone serve s3 --auth-key "$BUCKET_KEYS" --addr {gateway}:{port} /srv',
    )  # fmt: skip
    bucket = Bucket(container, f"http://{gateway}:{port}")

    def listening() -> bool | None:
        with socket.socket() as s:
            if s.connect_ex((gateway, port)) == 0:
                return True
        if docker("inspect", "-f", "{{.State.Running}}", container).stdout.strip() != "true":
            logs = docker("logs", container, check=False)
            stopped = f"the stand-in bucket stopped at once on {gateway}:{port}: {logs.stderr[-2000:]}"
            pytest.fail(stopped, pytrace=False)
        return None

    try:
        until(listening, 30, f"the stand-in bucket listening on {gateway}:{port}")
        yield bucket
    finally:
        docker("rm", "-f", container, check=False)


@pytest.fixture(scope="session")
def targets(standins: Standins) -> Iterator[dict[str, Build]]:
    """Both targets of app/Dockerfile, built with BuildKit from the stand-in base; removed afterwards."""
    built = {
        target: build_image(APP_DIR, target, f"ichrisbirch-test:{target}", standins.python)
        for target in ("development", "production")
    }
    yield built
    docker("rmi", *(build.tag for build in built.values()), check=False)


@pytest.fixture
def scratch_network() -> Iterator[str]:
    """A private network for one test; removed with every container on it afterwards."""
    name = f"icb-itest-{os.getpid()}-{time.monotonic_ns() % 100000}"
    docker("network", "create", "--label", TEST_LABEL, name)
    yield name
    containers = docker("ps", "-aq", "--filter", f"network={name}").stdout.split()
    if containers:
        docker("rm", "-f", "-v", *containers, check=False)
    docker("network", "rm", name, check=False)


def assert_no_secret_leak(deployed: Deployed) -> None:
    """No secret value of the stack's config in the history or config of the image the stack runs
    (found by the digest it exports), or in any container's logs."""
    image = deployed.image()
    texts = {
        "image history": docker("history", "--no-trunc", image).stdout,
        "image config": docker("image", "inspect", image).stdout,
    }
    for name in deployed.outputs["containers"].values():
        logs = docker("logs", name, check=False)
        texts[f"logs of {name}"] = logs.stdout + logs.stderr
    leaks = [where for where, text in texts.items() if any(secret in text for secret in TEST_SECRETS.values())]
    assert leaks == [], f"a secret value of the {deployed.stack} stack appears in: {leaks}"
