"""Pulumi's docker and tls plugins installed as an air-gapped machine installs them: scripts/toolchain
with ICB_PLUGINS_FROM naming a mirror of their release tarballs (named as Pulumi names them, checked
against the mirror's SHA256SUMS). The mirror here is made from the plugins this run uses, into an
empty PULUMI_HOME, so the test assumes nothing about where the run's own plugins came from."""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from infra.identity import PROJECT_DIR
from proof.harness.pulumi import PULUMI, pulumi_home

ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), platform.machine())


def installed() -> dict[str, str]:
    """name -> version of the docker and tls plugins the run uses."""
    found = {}
    for name in ("docker", "tls"):
        (folder,) = [p for p in (pulumi_home() / "plugins").glob(f"resource-{name}-v*") if p.is_dir()]
        found[name] = folder.name.removeprefix(f"resource-{name}-v")
    return found


def tarball(name: str, version: str) -> str:
    return f"pulumi-resource-{name}-v{version}-linux-{ARCH}.tar.gz"


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mirror as an air-gapped installation keeps one: the release tarballs and their SHA256SUMS."""
    folder = tmp_path_factory.mktemp("plugin-mirror")
    sums = []
    for name, version in installed().items():
        binary = pulumi_home() / "plugins" / f"resource-{name}-v{version}" / f"pulumi-resource-{name}"
        with tarfile.open(folder / tarball(name, version), "w:gz", compresslevel=1) as packed:
            packed.add(binary, arcname=binary.name)
        sums.append(
            f"{hashlib.sha256((folder / tarball(name, version)).read_bytes()).hexdigest()}  {tarball(name, version)}"
        )
    (folder / "SHA256SUMS").write_text("\n".join(sums) + "\n")
    return folder


def toolchain(home: Path, plugins_from: Path) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PULUMI_HOME": str(home), "ICB_PLUGINS_FROM": str(plugins_from)}
    return subprocess.run(
        [str(PROJECT_DIR / "scripts" / "toolchain")],
        capture_output=True, text=True, timeout=600, check=False, env=environment,
    )  # fmt: skip


def said(run: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in run.stderr.splitlines() if line.startswith("toolchain:")]


def test_both_plugins_install_from_the_mirror_and_the_cli_uses_them(mirror: Path, tmp_path: Path) -> None:
    home = tmp_path / "pulumi-home"
    ran = toolchain(home, mirror)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    for name, version in installed().items():
        assert f"toolchain: installed the {name} resource plugin {version} from {mirror}" in ran.stdout, ran.stdout
    listed = subprocess.run([str(PULUMI), "plugin", "ls"], capture_output=True, text=True, timeout=120,
                            check=True, env={**os.environ, "PULUMI_HOME": str(home)})  # fmt: skip
    for name, version in installed().items():
        assert any(line.split()[:3] == [name, "resource", version] for line in listed.stdout.splitlines()), (
            listed.stdout
        )
    again = toolchain(home, mirror)
    assert again.returncode == 0 and "installed the" not in again.stdout, "a second run installs nothing"


def test_a_tarball_that_does_not_match_its_sum_is_refused_in_one_line(mirror: Path, tmp_path: Path) -> None:
    altered = tmp_path / "mirror"
    shutil.copytree(mirror, altered)
    tls = tarball("tls", installed()["tls"])
    with (altered / tls).open("ab") as file:
        file.write(b"\0")
    actual = hashlib.sha256((altered / tls).read_bytes()).hexdigest()
    ran = toolchain(tmp_path / "pulumi-home", altered)
    assert ran.returncode == 1
    assert said(ran) == [f"toolchain: {altered}/{tls} has sha256 {actual}, but {altered}/SHA256SUMS says "
                         f"{hashlib.sha256((mirror / tls).read_bytes()).hexdigest()}"], ran.stderr  # fmt: skip
    assert not (tmp_path / "pulumi-home" / "plugins" / f"resource-tls-v{installed()['tls']}").exists()


def test_a_missing_tarball_is_named_with_where_it_was_looked_for(mirror: Path, tmp_path: Path) -> None:
    partial = tmp_path / "mirror"
    partial.mkdir()
    tls = tarball("tls", installed()["tls"])
    shutil.copy(mirror / tls, partial / tls)  # no SHA256SUMS: nothing to check against, and no docker
    ran = toolchain(tmp_path / "pulumi-home", partial)
    assert ran.returncode == 1
    docker = tarball("docker", installed()["docker"])
    assert said(ran) == [f"toolchain: no {docker} in {partial} (ICB_PLUGINS_FROM)"], ran.stderr
