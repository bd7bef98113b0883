"""The guide stays true to the tree: every file or folder the README and docs/ name exists, the
README stays a short guide, and the generated config page is current (tests/unit/test_config.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from infra.identity import PROJECT_DIR

PAGES = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
# A path in backticks or a link: starts with one of the project's top-level folders or files.
TOP = ("infra/", "proof/", "tests/", "bench/", "policy/", "scripts/", "app/", "docs/", "tools/", ".github/", ".ci/")
PATH = re.compile(r"[`(]((?:" + "|".join(re.escape(t) for t in TOP) + r")[A-Za-z0-9_./{},-]*)[`)]")


def named_paths(text: str) -> set[str]:
    found = set()
    for match in PATH.findall(text):
        path = match.rstrip(".,")
        if "{" in path:  # tests/integration/test_deploy_{dev,test,prod}.py
            head, options, tail = re.match(r"(.*)\{(.*)\}(.*)", path).groups()  # type: ignore[union-attr]
            found |= {f"{head}{option}{tail}" for option in options.split(",")}
        else:
            found.add(path)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(PROJECT_DIR).as_posix())
def test_every_path_a_page_names_exists(page: Path) -> None:
    paths = named_paths(page.read_text())
    missing = sorted(p for p in paths if "*" not in p and not (PROJECT_DIR / p).exists())
    assert missing == [], f"{page.name} names paths that do not exist: {missing}"


def test_the_check_sees_paths_and_braces() -> None:
    text = "see `infra/config.py`, [x](docs/testing.md) and `tests/integration/test_deploy_{dev,prod}.py`."
    assert named_paths(text) == {
        "infra/config.py", "docs/testing.md",
        "tests/integration/test_deploy_dev.py", "tests/integration/test_deploy_prod.py",
    }  # fmt: skip


def test_the_readme_is_a_short_guide_that_links_every_page() -> None:
    readme = (PROJECT_DIR / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for page in sorted((PROJECT_DIR / "docs").glob("*.md")):
        assert f"(docs/{page.name})" in readme, f"the README does not lead to docs/{page.name}"
