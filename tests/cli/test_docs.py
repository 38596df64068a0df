"""The docs stand alone: every relative link in README.md and docs/*.md resolves to a file in
the repository, and no page cites a document outside it or a tracker issue by number."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: [text](target) links, not images of remote pages; the target up to a space or ")".
LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
#: What the docs must not cite: documents kept outside the repository, issue numbers,
#: task labels.
OUTSIDE = re.compile(r"DESIGN\.md|TOOLCHAIN\.md|papers\.md|\b[Ii]ssues? #?\d+|\bH\d{1,2}\b|"
                     r"lead's report")


#: A repository path written as code (`docs/verify.md`, `omniconv/cli.py`): checked like a link.
CODE_PATH = re.compile(r"`((?:docs|omniconv|dse|rtl|sim|tests|bench|boards|configs)/"
                       r"[\w./-]+\.(?:md|py|yaml|json|toml))`")


def _links(text: str) -> list[str]:
    text = re.sub(r"```.*?```", "", text, flags=re.S)          # code blocks hold no links
    text = re.sub(r"`[^`]*`", "", text)                         # nor do code spans
    return [m.group(1) for m in LINK.finditer(text)]


def test_there_are_pages():
    assert len(PAGES) > 5


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in _links(page.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue                                            # http:, mailto:, anchors
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists() or ROOT not in (path, *path.parents):
            broken.append(target)
    assert not broken, f"{page.name}: links to nothing in the repository: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_repository_paths_named_in_code_exist(page):
    missing = [p for p in CODE_PATH.findall(page.read_text()) if not (ROOT / p).exists()]
    assert not missing, f"{page.name} names files the repository does not have: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_no_outside_documents_or_issue_numbers(page):
    hits = [f"{i}: {line.strip()}" for i, line in enumerate(page.read_text().splitlines(), 1)
            if OUTSIDE.search(line)]
    assert not hits, f"{page.name} cites what is not in the repository: {hits}"


def test_the_checks_can_fail(tmp_path):
    """The link pattern and the outside-document pattern catch what they are for."""
    assert _links("see [x](docs/nope.md) and ![i](a.png) and [w](https://e.org) and "
                  "`a[0](b)`") == ["docs/nope.md", "https://e.org"]
    assert CODE_PATH.findall("in `docs/nope.md` and `build/x.json`") == ["docs/nope.md"]
    assert OUTSIDE.search("as DESIGN.md says") and OUTSIDE.search("issue 6 item 1")
    assert OUTSIDE.search("the conv datapath (H9)") and not OUTSIDE.search("the H200 GPU")
