"""What an operator command changes, as `pulumi up --target` patterns, so that it changes that and
nothing else pending in the stack file (another image, a new setting): those wait for the next
plain `up`. Patterns, not URNs: they match a resource whatever its type (a rollback's prebuilt
`app-image` replaces the built one) and orchestrator, and before it exists in state.

    python -m infra.targets maintenance <stack>   # the options scripts/ops passes
    python -m infra.targets release <stack>       # the options scripts/rollback passes
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from infra.identity import Identity
from infra.ingress import ROUTER
from infra.spec import HAPROXY_CONFIG_FILE

# The application's services: those that run the application image (tests/unit/test_targets.py
# holds this equal to the specs whose image is "app").
APPLICATION = ("migrate", "api", "app", "scheduler", "tests")


def _named(*names: str) -> list[str]:
    """A pattern per logical name, of any type and parent (`**` crosses URN segments)."""
    return [f"**::{name}" for name in names]


def maintenance(stack: str) -> list[str]:
    """The router and its configuration: on one engine the holder container (and its volume) named
    by the file, on a swarm the Swarm config named by the stack."""
    component = Identity.config_component(ROUTER, HAPROXY_CONFIG_FILE)
    return _named(ROUTER, component, Identity(stack).config(ROUTER, HAPROXY_CONFIG_FILE))


def release() -> list[str]:
    """The application image and every container or service that runs it."""
    return _named("app-image", *APPLICATION)


def options(patterns: Sequence[str]) -> list[str]:
    return [arg for pattern in patterns for arg in ("--target", pattern)]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) == 2 and args[0] in ("maintenance", "release"):
        patterns = maintenance(args[1]) if args[0] == "maintenance" else release()
        print("\n".join(options(patterns)))
        return 0
    print("usage: python -m infra.targets maintenance|release <stack>", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
