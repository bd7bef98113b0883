"""The native Image's Check (its context digest, its defaults) and the state a Create's Read is
predicted to write, for plans."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from infra.canonical import cpus, go_duration, parse_go_duration
from proof.provider.schema import CONTAINER, CONTAINER_FIELDS, NotModelled
from proof.provider.secret_values import reveal


def check_image(inputs: Mapping[str, Any], workdir: Path, *, portable_modes: bool = False) -> dict[str, Any]:
    """The native Image's Check (provider.go:128-268): defaults, and the build context's digest.

    `portable_modes` hashes each file's mode as git records it (644 or 755) instead of the file
    system's, so committed plans do not depend on a machine's umask; the engine stand-in uses real modes.
    """
    checked = dict(inputs)
    checked.setdefault("buildOnPreview", False)
    checked.setdefault("skipPush", False)
    build = dict(checked.get("build") or {"context": "."})
    context = build.get("context", ".")
    build.setdefault("dockerfile", f"{context}/Dockerfile")
    build.setdefault("platform", "linux/amd64")
    context_dir = resolve_path(workdir, context)
    dockerfile = resolve_path(workdir, build["dockerfile"])
    if not dockerfile.is_file():
        raise NotModelled(f"Image: dockerfile {build['dockerfile']} not found (relative to the program's directory)")
    build["contextDigest"] = context_digest(context_dir, dockerfile, portable_modes=portable_modes)
    checked["build"] = build
    return checked


def resolve_path(workdir: Path, path: str) -> Path:
    """A build path as the provider resolves it: relative to the program's working directory."""
    candidate = Path(path)
    return candidate if candidate.is_absolute() else workdir / candidate


def context_digest(context: Path, dockerfile: Path, *, portable_modes: bool = False) -> str:
    """SHA-256 over the Dockerfile and every context file not excluded by .dockerignore (provider.go:544-684)."""
    digest = hashlib.sha256()
    digest.update(b"Dockerfile")
    digest.update(hashlib.sha256(dockerfile.read_bytes()).hexdigest().encode())
    ignore_file = Path(f"{dockerfile}.dockerignore")
    if not ignore_file.is_file():
        ignore_file = context / ".dockerignore"
    patterns = dockerignore_patterns(ignore_file.read_text()) if ignore_file.is_file() else []
    for path in sorted(_context_files(context), key=lambda p: p.relative_to(context).as_posix()):
        relative = path.relative_to(context).as_posix()
        if excluded(relative, patterns):
            continue
        if path.is_symlink():
            content = os.readlink(path).encode()
            mode = "L"
        else:
            content = path.read_bytes()
            executable = bool(path.stat().st_mode & 0o111)
            mode = ("-rwxr-xr-x" if executable else "-rw-r--r--") if portable_modes else _mode_string(path)
        digest.update(f"{relative}{mode}".encode())
        digest.update(hashlib.sha256(content).hexdigest().encode())
    return digest.hexdigest()


def _context_files(root: Path) -> Iterable[Path]:
    for directory, _, files in os.walk(root):
        for name in files:
            yield Path(directory) / name


def _mode_string(path: Path) -> str:
    import stat

    return stat.filemode(path.lstat().st_mode)


def dockerignore_patterns(text: str) -> list[tuple[bool, re.Pattern[str]]]:
    """(negated, regex) per .dockerignore line, with moby/patternmatcher's glob rules."""
    patterns = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        line = os.path.normpath(line[1:] if negated else line).lstrip("/")
        regex = ""
        index = 0
        while index < len(line):
            char = line[index]
            if line.startswith("**", index):
                index += 2
                if line.startswith("/", index):  # "**/": any number of directories, none included
                    regex += "(?:.*/)?"
                    index += 1
                else:
                    regex += ".*"
                continue
            regex += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
            index += 1
        patterns.append((negated, re.compile(f"^{regex}$")))
    return patterns


def excluded(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether a context path is left out: the last matching pattern wins; a matching parent counts."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for negated, pattern in patterns:
        if any(pattern.match(candidate) for candidate in candidates):
            result = not negated
    return result


def predict_read(type_token: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """What the state holds after Create and Read, predicted from the inputs alone (for plan diffs).

    Only what this engine is known to write back differently from the inputs is changed: memorySwap
    (twice the memory when only memory is set), cpus and durations in their canonical forms.
    """
    state = dict(inputs)
    if type_token != CONTAINER:
        return state
    memory = reveal(inputs.get("memory")) or 0
    if memory and not reveal(inputs.get("memorySwap")):
        state["memorySwap"] = 2 * int(memory)
    if inputs.get("cpus") not in (None, ""):
        state["cpus"] = cpus(reveal(inputs["cpus"]))
    check = reveal(inputs.get("healthcheck"))
    if check:
        block = {**CONTAINER_FIELDS["healthcheck"].nested_defaults, **check}
        for key in ("interval", "timeout", "startPeriod", "startInterval"):
            block[key] = go_duration(parse_go_duration(str(block[key])))
        state["healthcheck"] = block
    return state
