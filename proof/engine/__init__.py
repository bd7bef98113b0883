"""The Pulumi engine and the pulumi-docker provider, stood in for on a real Docker engine, run after run.

The Pulumi CLI cannot be installed here. `DockerEngine` turns each registration of the program into
what `pulumi up` would do to the real engine, given the state the previous run left:

- `state.py`: per resource its checked inputs, the state Read wrote, its id, dependencies and
  options, kept in a JSON file as Pulumi keeps a checkpoint;
- `rules.py`: the engine's decisions, one function each (ignore_changes, autonaming, `--replace`,
  protect, delete-first, the delete-first cascade, failures, pending deletes, deletion order);
- `engine.py`: the step generator and executor that apply them, and `refresh`;
- `handlers/`: one resource type each, as the provider handles it (check, diff, create, read,
  update, delete), the provider's diff rules taken from `proof.provider` (shared with plan --diff);
- `report.py`: the steps as `pulumi up` prints them, and the run's figures;
- `docker_engine.py`: the whole, on a Docker engine, with what the suite does around a run.

An input it cannot model fails the run naming it. Every object it creates carries the label
`ichrisbirch.deployer=itest` (hidden from Read, so it is no diff); `sweep()` removes exactly those.
"""

from proof.engine.docker_engine import DockerEngine
from proof.engine.handlers.base import MARKER
from proof.engine.report import DeploymentError, Step, UpFailed, UpResult
from proof.engine.state import Resource

__all__ = ["MARKER", "DeploymentError", "DockerEngine", "Resource", "Step", "UpFailed", "UpResult"]
