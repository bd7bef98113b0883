"""scripts/ops's parts that need no stack: its refusals and how it reads a state."""

from __future__ import annotations

import subprocess

import pytest

from infra import ops, stack_state
from infra.engine import Engine


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["nope", "status"], "ops: no stack 'nope' in this project: one of dev, prod, test"),
        (["dev", "restart"], "ops: no verb 'restart': one of status, logs, exec, maintenance, history"),
        (["dev"], "ops: a verb is needed: one of status, logs, exec, maintenance, history"),
    ],
)
def test_bad_input_is_one_line_naming_the_valid_ones(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ops.main(argv) == 2
    assert capsys.readouterr().err.strip() == said


def test_the_release_is_the_built_tag_or_the_prebuilt_reference() -> None:
    built = [{"urn": "urn:pulumi:prod::ichrisbirch::x$docker:index/image:Image::app-image", "type": stack_state.IMAGE,
              "outputs": {"imageName": "ichrisbirch:prod-4ad4ad607e66"}}]  # fmt: skip
    pulled = [{"urn": "urn:pulumi:prod::ichrisbirch::x$docker:index/remoteImage:RemoteImage::app-image",
               "type": stack_state.REMOTE_IMAGE, "outputs": {"name": "registry.local/app@sha256:ab"}}]  # fmt: skip
    assert stack_state.release_of(built) == "ichrisbirch:prod-4ad4ad607e66"
    assert stack_state.release_of(pulled) == "registry.local/app@sha256:ab"
    assert stack_state.release_of([]) == "-"


def test_history_times_match_the_backends_records() -> None:
    assert ops.epoch("2026-12-03T07:01:02.000Z") == 1796281262
    assert ops.epoch("soon") is None


def test_a_container_names_its_own_stacks_release_where_one_image_carries_two(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two stacks built from the same source on one engine: one image, a release tag of each.
    tags = '["ichrisbirch:backups-f45aaf2e7586","ichrisbirch:dev-f45aaf2e7586"]'
    engine = Engine("unix:///x.sock")
    monkeypatch.setattr(
        Engine, "run", lambda _, *args, **__: subprocess.CompletedProcess(list(args), 0, stdout=tags + "\n", stderr="")
    )
    assert ops.image_name(engine, "sha256:211db21b56ff", "dev") == "ichrisbirch:dev-f45aaf2e7586"
    assert ops.image_name(engine, "sha256:211db21b56ff", "backups") == "ichrisbirch:backups-f45aaf2e7586"
    assert ops.image_name(engine, "sha256:211db21b56ff", "prod") == "ichrisbirch:backups-f45aaf2e7586"
