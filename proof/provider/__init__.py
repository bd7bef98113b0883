"""What pulumi-docker 5.x does with a resource's inputs on the next `pulumi up`, as data and pure functions.

The Pulumi CLI and the provider cannot run on the machines this project is built on, so two
stand-ins need the provider's rules: the engine stand-in (`proof/engine/`), which
applies them to a real engine run after run, and `python -m proof.plan --diff`, which predicts from
two committed plans what an `up` would do. Both take the rules from here, so they cannot drift apart.

Sources (read at these versions):
kreuzwerker/terraform-provider-docker v4.5.0 (Container, Network, Volume, RemoteImage), bridged by
pulumi-terraform-bridge, and pulumi-docker's own native `Image` (provider.go, image.go).

The bridge diffs the state of the last run against the new inputs under Terraform's plan rules:
- a ForceNew ("R") field that differs replaces the resource;
- an updatable ("U") field is changed in place through the engine's API;
- a state-only ("N") field is recorded and sent nowhere (a running container never sees it);
- an Optional+Computed field absent from the inputs never differs; an Optional field absent from
  the inputs but set in state differs as a removal; schema defaults fill absent inputs.

The package: `schema.py` (the fields), `diff.py` (the bridge's diff), `check.py` (the Image's
Check, the predicted Read), `secret_values.py` (secret-marked values). Everything is re-exported
here: `from proof import provider; provider.diff_fields(...)`.
"""

from proof.provider.check import (
    check_image,
    context_digest,
    dockerignore_patterns,
    excluded,
    predict_read,
    resolve_path,
)
from proof.provider.diff import (
    Diff,
    deletes_before_replace,
    diff_fields,
    replaced_by_unknowns,
    with_ignored,
)
from proof.provider.schema import (
    CERT_REQUEST,
    CONTAINER,
    CONTAINER_FIELDS,
    CONTAINER_OUTPUTS,
    CONTAINER_UPDATE_API,
    FIELDS,
    IMAGE,
    LOCALLY_SIGNED_CERT,
    NETWORK,
    NETWORK_FIELDS,
    NETWORK_OUTPUTS,
    OUTPUTS,
    PRIVATE_KEY,
    PROVIDER,
    PROVIDER_DELETES_BEFORE_REPLACE,
    REMOTE_IMAGE,
    REMOTE_IMAGE_FIELDS,
    REMOTE_IMAGE_OUTPUTS,
    SECRET,
    SECRET_FIELDS,
    SELF_SIGNED_CERT,
    SERVICE,
    SERVICE_CONFIG,
    SERVICE_CONFIG_FIELDS,
    TLS_OUTPUTS,
    TLS_TYPES,
    VOLUME,
    VOLUME_FIELDS,
    VOLUME_OUTPUTS,
    Change,
    Field,
    NotModelled,
    Shape,
)
from proof.provider.secret_values import (
    reveal,
    secret_fields,
)

__all__ = [
    "CERT_REQUEST",
    "CONTAINER",
    "CONTAINER_FIELDS",
    "CONTAINER_OUTPUTS",
    "CONTAINER_UPDATE_API",
    "Change",
    "Diff",
    "FIELDS",
    "Field",
    "IMAGE",
    "LOCALLY_SIGNED_CERT",
    "NETWORK",
    "NETWORK_FIELDS",
    "NETWORK_OUTPUTS",
    "NotModelled",
    "OUTPUTS",
    "PRIVATE_KEY",
    "PROVIDER",
    "PROVIDER_DELETES_BEFORE_REPLACE",
    "REMOTE_IMAGE",
    "REMOTE_IMAGE_FIELDS",
    "REMOTE_IMAGE_OUTPUTS",
    "SECRET",
    "SECRET_FIELDS",
    "SELF_SIGNED_CERT",
    "SERVICE",
    "SERVICE_CONFIG",
    "SERVICE_CONFIG_FIELDS",
    "Shape",
    "TLS_OUTPUTS",
    "TLS_TYPES",
    "VOLUME",
    "VOLUME_FIELDS",
    "VOLUME_OUTPUTS",
    "check_image",
    "context_digest",
    "deletes_before_replace",
    "diff_fields",
    "dockerignore_patterns",
    "excluded",
    "predict_read",
    "replaced_by_unknowns",
    "resolve_path",
    "reveal",
    "secret_fields",
    "with_ignored",
]
