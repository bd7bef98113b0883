"""scripts/ops: operate a deployed stack from what Pulumi recorded, never from guessed names.

    python -m infra.ops <stack> status                          # every service; exit 1 if one is unhealthy
    python -m infra.ops <stack> logs <service> [--follow] [--since 10m]
    python -m infra.ops <stack> exec <service> [-it] -- <command...>
    python -m infra.ops <stack> maintenance on|off [--message TEXT]
    python -m infra.ops <stack> history

Each verb reads the stack's state (`pulumi stack export`: which containers or Swarm services exist
now, under which name, on which engine: their provider's `host`) and its history (`pulumi stack
history`). Only `maintenance` changes the stack: it sets `maintenance` in the stack's config and runs
a normal `pulumi up`, which replaces the router alone, create-first. The CLI is the one
scripts/toolchain installs, with the backend and passphrase the caller's environment gives.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from infra import diagnose, targets
from infra.engine import Engine
from infra.identity import PROJECT, committed_stack_config
from infra.profiles import PROFILES
from infra.stack_state import OpsError, StackState, Workload, pulumi, release_of

VERBS = ("status", "logs", "exec", "maintenance", "history")


# --- status ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    service: str
    runs: str
    where: str
    state: str
    health: str
    release: str
    version: str
    since: str
    restarts: str
    ok: bool


def container_row(w: Workload, stack: str) -> Row:
    inspected = w.engine.run("container", "inspect", w.name)
    if inspected.returncode != 0:
        return Row(w.service, w.name, w.engine.host, "missing", "-", "-", "-", "-", "-", False)
    info = json.loads(inspected.stdout)[0]
    state = info["State"]
    labels = info["Config"].get("Labels") or {}
    health = (state.get("Health") or {}).get("Status", "none")
    status = state["Status"] if state["Status"] != "exited" else f"exited ({state['ExitCode']})"
    if w.one_shot:
        ok = state["Status"] == "running" or (state["Status"] == "exited" and state["ExitCode"] == 0)
    else:
        ok = state["Status"] == "running" and health in ("healthy", "none")
    version = labels.get("org.opencontainers.image.version", "-")
    revision = labels.get("org.opencontainers.image.revision")
    if revision and revision != "unknown":
        version = f"{version} ({revision[:12]})"
    since = state["StartedAt"][:19].replace("T", " ")
    restarts = str(info.get("RestartCount", 0))
    return Row(
        w.service,
        w.name,
        w.engine.host,
        status,
        health,
        image_name(w.engine, info["Image"], stack),
        version,
        since,
        restarts,
        ok,
    )


def image_name(engine: Engine, image_id: str, stack: str) -> str:
    """The image's tag (containers name their image by id): the stack's own release tag,
    `[<registry>/]ichrisbirch:<stack>-<key>`, where the same image also carries another stack's (two
    stacks built from the same source on one engine), else its first tag."""
    tags = engine.run("image", "inspect", "-f", "{{json .RepoTags}}", image_id).stdout.strip()
    named = [str(tag) for tag in json.loads(tags)] if tags.startswith("[") else []
    own = [tag for tag in named if tag.rsplit(":", 1)[-1].startswith(f"{stack}-")]
    return (own or named or [image_id[:19]])[0]


def swarm_row(w: Workload) -> Row:
    inspected = w.engine.run("service", "inspect", w.name)
    if inspected.returncode != 0:
        return Row(w.service, w.name, w.engine.host, "missing", "-", "-", "-", "-", "-", False)
    spec = json.loads(inspected.stdout)[0]
    image = spec["Spec"]["TaskTemplate"]["ContainerSpec"]["Image"].split("@", 1)[0]
    labels = spec["Spec"]["TaskTemplate"]["ContainerSpec"].get("Labels") or {}
    tasks = [
        json.loads(line) for line in w.engine.run("service", "ps", w.name, "--format", "{{json .}}").stdout.splitlines()
    ]
    running = [t for t in tasks if t["DesiredState"] == "Running" and t["CurrentState"].startswith("Running")]
    wanted = (spec["Spec"].get("Mode", {}).get("Replicated") or {}).get("Replicas", len(running))
    failed = sum(1 for t in tasks if t["CurrentState"].startswith(("Failed", "Rejected")))
    nodes = ",".join(sorted({t["Node"] for t in running})) or "-"
    since = (spec.get("UpdatedAt") or spec.get("CreatedAt") or "-")[:19].replace("T", " ")
    ok = len(running) >= wanted
    state = f"{len(running)}/{wanted} running"
    version = labels.get("org.opencontainers.image.version", "-")
    return Row(
        w.service, f"{w.name} (tasks)", nodes, state, "ok" if ok else "degraded", image, version, since, str(failed), ok
    )


def last_update(stack: str) -> str:
    listed = pulumi("stack", "history", "--stack", stack, "--json", check=False)
    entries = updates(json.loads(listed.stdout or "[]") if listed.returncode == 0 else [])
    if not entries:
        return "no update recorded"
    number, last = entries[0]
    changes = ", ".join(f"{n} {op}" for op, n in sorted((last.get("resourceChanges") or {}).items()))
    return f"#{number} {last.get('kind')} {last.get('result')} at {last.get('startTime')} ({changes})"


def updates(listed: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(number, entry) of `pulumi stack history --json`'s entries, newest first. A file backend
    records no version, so it is the entry's place counted from the first update."""
    return [(int(entry.get("version") or len(listed) - i), entry) for i, entry in enumerate(listed)]


def print_table(rows: Sequence[Sequence[str]]) -> None:
    """Rows (the first the header) in columns as wide as their widest cell, as `docker ps` prints."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def status(state: StackState) -> int:
    rows = [container_row(w, state.stack) if w.kind == "container" else swarm_row(w) for w in state.workloads()]
    header = ("SERVICE", "RUNS", "WHERE", "STATE", "HEALTH", "RELEASE", "VERSION", "SINCE", "RESTARTS")
    table = [
        header,
        *[(r.service, r.runs, r.where, r.state, r.health, r.release, r.version, r.since, r.restarts) for r in rows],
    ]
    print_table(table)
    print(f"\nlast update: {last_update(state.stack)}")
    unhealthy = [r.service for r in rows if not r.ok]
    if unhealthy:
        print(f"unhealthy: {', '.join(unhealthy)}")
        return 1
    print(f"all {len(rows)} services healthy")
    return 0


# --- logs and exec --------------------------------------------------------------------------------


def logs(state: StackState, service: str, follow: bool, since: str | None) -> int:
    options = ["--timestamps", *(["--follow"] if follow else []), *(["--since", since] if since else [])]
    streams = []
    for w in state.of(service):
        command = w.engine.command(*(["service", "logs"] if w.kind == "swarm" else ["logs"]), *options, w.name)
        # A Swarm service's lines carry their task and node already; a container's get its name.
        prefix = "" if w.kind == "swarm" else f"{w.name}| "
        streams.append((prefix, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    lock = threading.Lock()

    def pump(prefix: str, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with lock:
                sys.stdout.write(prefix + line)
                sys.stdout.flush()

    threads = [threading.Thread(target=pump, args=stream, daemon=True) for stream in streams]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        for _, process in streams:
            process.terminate()
    return max((process.wait() for _, process in streams), default=0)


def swarm_task_container(state: StackState, w: Workload) -> tuple[Engine, str]:
    """(engine, container id) of a running task of a Swarm service, on an engine the stack names."""
    engines = {}
    for engine in sorted(set(state.engines().values()), key=str):
        node = engine.run("info", "--format", "{{.Swarm.NodeID}}").stdout.strip()
        if node:
            engines[node] = engine
    listed = w.engine.run("service", "ps", w.name, "--filter", "desired-state=running", "--format", "{{.ID}}")
    nodes = []
    for task_id in listed.stdout.split():
        task = json.loads(w.engine.run("inspect", task_id).stdout)[0]
        container = (task.get("Status", {}).get("ContainerStatus") or {}).get("ContainerID")
        if container and task.get("NodeID") in engines:
            return engines[task["NodeID"]], container
        nodes.append(task.get("NodeID", "?")[:12])
    if not nodes:
        raise OpsError(f"the {w.service} service of {state.stack} has no running task")
    raise OpsError(
        f"the {w.service} tasks run on nodes {', '.join(nodes)}, whose engines the stack names no provider for"
    )


def exec_in(state: StackState, service: str, command: Sequence[str], interactive: bool, tty: bool) -> int:
    if not command:
        raise OpsError("exec needs a command after --, e.g. scripts/ops prod exec api -- python -V")
    workloads = state.of(service)
    w = workloads[0]
    if w.kind == "swarm":
        engine, target = swarm_task_container(state, w)
    else:
        running = [
            x for x in workloads if x.engine.run("inspect", "-f", "{{.State.Running}}", x.name).stdout.strip() == "true"
        ]
        if not running:
            names = ", ".join(x.name for x in workloads)
            raise OpsError(f"no container of {service} is running in the {state.stack} stack ({names})")
        engine, target = running[0].engine, running[0].name
    flags = [*(["-i"] if interactive else []), *(["-t"] if tty else [])]
    return subprocess.call(engine.command("exec", *flags, target, *command, tty=tty))


# --- maintenance ----------------------------------------------------------------------------------


def maintenance(state: StackState, switch: str, message: str | None) -> int:
    environment = str(committed_stack_config(state.stack).get(f"{PROJECT}:environment", state.stack))
    if environment not in PROFILES or not PROFILES[environment].ingress:
        raise OpsError(
            f"maintenance: the {state.stack} stack runs no ingress (its {environment} environment),"
            " whose router would answer for it"
        )
    pulumi("config", "set", "maintenance", "true" if switch == "on" else "false", "--stack", state.stack)
    if message is not None:
        pulumi("config", "set", "maintenanceMessage", message, "--stack", state.stack)
    who = f"{os.environ.get('USER') or 'unknown'}@{os.uname().nodename}"
    print(
        f"ops: maintenance {switch} for {state.stack}: `pulumi up` of the router alone (replaced create-first;"
        " any other change pending in the stack file waits for the next `up`)",
        flush=True,
    )
    only_the_router = targets.options(targets.maintenance(state.stack))
    return diagnose.up(
        state.stack, [*only_the_router, "--yes", "--skip-preview", "--message", f"{who}: maintenance {switch}"]
    )


# --- history --------------------------------------------------------------------------------------


def backend_dir() -> Path | None:
    """The folder of a file backend (the one scripts/deploy logs in to); None for any other."""
    who = pulumi("whoami", "--json", check=False)
    url = json.loads(who.stdout).get("url", "") if who.returncode == 0 and who.stdout.strip() else ""
    url = url or os.environ.get("PULUMI_BACKEND_URL", "")
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def checkpoints(stack: str) -> dict[int, list[dict[str, Any]]]:
    """A file backend's record of each update: its start time -> the resources it left."""
    folder = backend_dir()
    if folder is None:
        return {}
    found: dict[int, list[dict[str, Any]]] = {}
    for history in (folder / ".pulumi" / "history" / PROJECT / stack).glob(f"{stack}-*.history.json"):
        checkpoint = history.with_name(history.name.replace(".history.json", ".checkpoint.json"))
        if checkpoint.exists():
            start = json.loads(history.read_text()).get("startTime")
            latest = json.loads(checkpoint.read_text()).get("checkpoint", {}).get("latest") or {}
            found[int(start or 0)] = latest.get("resources") or []
    return found


def locks(stack: str) -> Iterator[str]:
    folder = backend_dir()
    if folder is None:
        return
    for lock in sorted((folder / ".pulumi" / "locks").glob(f"**/{PROJECT}/{stack}/*.json")):
        held = json.loads(lock.read_text())
        holder = f"{held.get('username')}@{held.get('hostname')} (pid {held.get('pid')})"
        yield f"{holder} since {str(held.get('timestamp', ''))[:19]}"


def epoch(stamp: Any) -> int | None:
    """`pulumi stack history --json`'s time (2026-12-03T07:01:02.000Z) in seconds, as the backend records it."""
    try:
        return int(datetime.datetime.fromisoformat(str(stamp)).timestamp())
    except ValueError:
        return None


def history(state: StackState) -> int:
    listed = json.loads(pulumi("stack", "history", "--stack", state.stack, "--json").stdout or "[]")
    recorded = checkpoints(state.stack)
    header = ("#", "WHEN (UTC)", "KIND", "RESULT", "WHO", "RELEASE", "CHANGES")
    rows = [header]
    for number, entry in updates(listed):
        message = entry.get("message") or ""
        environment = entry.get("environment") or {}
        who = message.split(":", 1)[0] if "@" in message.split(":", 1)[0] else environment.get("git.author", "-")
        start = epoch(entry.get("startTime"))
        resources = recorded.get(start) if start is not None else None
        release = release_of(resources) if resources is not None else "-"
        changes = ", ".join(f"{n} {op}" for op, n in sorted((entry.get("resourceChanges") or {}).items()))
        rows.append(
            (
                str(number),
                str(entry.get("startTime", "-"))[:19].replace("T", " "),
                str(entry.get("kind")),
                str(entry.get("result")),
                who or "-",
                release,
                changes,
            )
        )
    print_table(rows)
    held = list(locks(state.stack))
    print(f"\nlock: {'held by ' + '; '.join(held) if held else 'free (no update is running)'}")
    return 0


# --- the command line ------------------------------------------------------------------------------


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/ops", description="Operate a deployed stack.")
    parser.add_argument("stack")
    verbs = parser.add_subparsers(dest="verb", metavar="|".join(VERBS))
    verbs.add_parser("status", help="every service, its health and release; exit 1 if one is unhealthy")
    log = verbs.add_parser("logs", help="a service's logs, across its containers or tasks")
    log.add_argument("service")
    log.add_argument("--follow", "-f", action="store_true")
    log.add_argument("--since", help="e.g. 10m, 2h, or a timestamp")
    run = verbs.add_parser("exec", help="a command in a running container of a service")
    run.add_argument("service")
    run.add_argument("-i", "--interactive", action="store_true")
    run.add_argument("-t", "--tty", action="store_true")
    run.add_argument("command", nargs=argparse.REMAINDER)
    switch = verbs.add_parser("maintenance", help="the router answers 503 to everything (on) or serves (off)")
    switch.add_argument("switch", choices=("on", "off"))
    switch.add_argument("--message", help="the sentence the maintenance page shows")
    verbs.add_parser("history", help="who deployed what and when, and who holds the stack's lock")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    # -it, as with docker exec
    args = [a for arg in args for a in (["-i", "-t"] if arg == "-it" else [arg])]
    if len(args) >= 2 and args[1] not in VERBS and not args[1].startswith("-"):
        print(f"ops: no verb {args[1]!r}: one of {', '.join(VERBS)}", file=sys.stderr)
        return 2
    parsed = parse(args)
    if parsed.verb is None:
        print(f"ops: a verb is needed: one of {', '.join(VERBS)}", file=sys.stderr)
        return 2
    try:
        state = StackState.load(parsed.stack)
        if parsed.verb == "status":
            return status(state)
        if parsed.verb == "logs":
            return logs(state, parsed.service, parsed.follow, parsed.since)
        if parsed.verb == "exec":
            command = parsed.command[1:] if parsed.command[:1] == ["--"] else parsed.command
            return exec_in(state, parsed.service, command, parsed.interactive, parsed.tty)
        if parsed.verb == "maintenance":
            return maintenance(state, parsed.switch, parsed.message)
        return history(state)
    except OpsError as error:
        print(f"ops: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
