"""A registry on this machine for the prebuilt-image proofs: Debian's docker-registry (the one the
test swarm runs), on a free loopback port, which the engine trusts without TLS (127.0.0.0/8)."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from proof.harness.cli import docker
from proof.harness.run import claim_port


@contextmanager
def local_registry() -> Iterator[str]:
    """host:port of a fresh, empty registry; stopped and its storage removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="icb-registry-"))
    address = f"127.0.0.1:{claim_port()}"
    (root / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"  delete:\n    enabled: true\nhttp:\n  addr: {address}\n"
    )
    server = subprocess.Popen(
        ["docker-registry", "serve", str(root / "config.yml")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://{address}/v2/", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"the registry at {address} did not start") from None
                time.sleep(0.2)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def push(image: str, repository: str) -> str:
    """Tag the local `image` as `repository:pushed` and push it; its reference by digest, as CI records it."""
    docker("tag", image, f"{repository}:pushed")
    pushed = docker("push", f"{repository}:pushed", timeout=600)
    found = re.search(r"digest: (sha256:[0-9a-f]{64})", pushed.stdout)
    assert found, pushed.stdout + pushed.stderr
    docker("rmi", f"{repository}:pushed")  # the engine has the bytes, not this name: `up` must name the digest
    return f"{repository}@{found.group(1)}"
