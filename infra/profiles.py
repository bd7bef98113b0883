"""How dev, test and prod differ in kind: the one table of it.

Values per stack (ports, sizes, names) live in the stack files; what an environment *is* (which
image target, whether data persists, whether an ingress balances the web services) lives here, read
by the config checks and by the services.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Profile:
    """How one environment differs from the others, in kind. Values per stack live in its stack file."""

    image_target: Literal["development", "production"]
    hot_reload: bool  # source bind-mounted from the checkout; servers reload on change
    production_servers: bool  # gunicorn instead of the frameworks' development servers
    hardened: bool  # non-root, read-only root filesystem, no capabilities, no-new-privileges
    persistent_data: bool  # named volumes; otherwise tmpfs with fsync off
    published: frozenset[str]  # services reachable from the host
    restart: Literal["always", "unless-stopped"]
    runs_test_suite: bool  # a one-shot `tests` container runs the app's suite against the stack
    # An ingress and its router (TLS, routing) balance api and app, which are replaced create-first
    # (the new container healthy before the old one stops): an update drops no request.
    ingress: bool = False
    # Each secret a file in just the containers that read it, named by a <VAR>_FILE variable; never
    # a value in an environment, which `docker inspect` shows to anyone allowed to run it.
    secrets_in_files: bool = False


_ALL_PUBLISHED = frozenset({"api", "app", "postgres", "redis"})

PROFILES: dict[str, Profile] = {
    "dev": Profile(
        image_target="development",
        hot_reload=True,
        production_servers=False,
        hardened=False,
        persistent_data=True,
        published=_ALL_PUBLISHED,
        restart="unless-stopped",
        runs_test_suite=False,
    ),
    "test": Profile(
        image_target="development",
        hot_reload=False,
        production_servers=False,
        hardened=False,
        persistent_data=False,
        # The data stores' ports for poking at a failed run; api and app only through the ingress
        # (create-first containers cannot hold a host port: old and new run side by side).
        published=frozenset({"postgres", "redis", "ingress"}),
        restart="unless-stopped",
        runs_test_suite=True,
        ingress=True,
    ),
    "prod": Profile(
        image_target="production",
        hot_reload=False,
        production_servers=True,
        hardened=True,
        persistent_data=True,
        published=frozenset({"ingress"}),
        restart="always",
        runs_test_suite=False,
        secrets_in_files=True,
        ingress=True,
    ),
}
