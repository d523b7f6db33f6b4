"""The studies gallery on the site: one page per study README, and links to them from the gallery.

``docs/studies/index.md`` (written by ``docs/build_studies.py``) links each study to
``../../analyses/<name>/README.md`` so the links work when browsing the repository; on the site
those links point to ``studies/readme/<name>`` pages that include the README (generated here at
each build, not committed).
"""

from __future__ import annotations

import re
from pathlib import Path

_LINK = re.compile(r"\]\(\.\./\.\./analyses/([A-Za-z0-9_]+)/README\.md\)")


def write(studies: Path, analyses: Path) -> None:
    """Write ``studies/readme/<name>.md`` including ``analyses/<name>/README.md`` for every study."""
    out = studies / "readme"
    out.mkdir(exist_ok=True)
    names = sorted(p.parent.name for p in analyses.glob("*/README.md"))
    for stale in out.glob("*.md"):
        if stale.stem not in names:
            stale.unlink()
    for name in names:
        text = f"```{{include}} ../../../analyses/{name}/README.md\n```\n"
        page = out / f"{name}.md"
        if not page.exists() or page.read_text() != text:
            page.write_text(text)
    (out / "index.md").unlink(missing_ok=True)


def link_readmes(app, docname, source):
    """On the studies gallery page, point README links at the generated pages."""
    if docname == "studies/index":
        names = sorted(p.stem for p in (Path(app.srcdir) / "studies" / "readme").glob("*.md"))
        source[0] = _LINK.sub(r"](readme/\1.md)", source[0])
        source[0] += "\n```{toctree}\n:hidden:\n\n" + "\n".join(f"readme/{n}" for n in names) + "\n```\n"
