"""MkDocs hooks of the documentation site.

- ``on_files`` puts the repository's plots into the site without copying them into docs/.
  ``models/pretrained/MODEL.md`` (included in the model card page by ``pymdownx.snippets``) links
  its pictures relative to itself (``accuracy_curves.png``, ``ladder.png``), so they are added at
  the site's root; the benchmark plot goes to ``img/``. Added to MkDocs' files, they are copied
  into the built site and the links to them are checked like any other under ``--strict``.
- ``on_page_content`` renders the Sphinx roles in docstrings (``:func:`x```, ``:class:`~a.B```),
  which mkdocstrings leaves as text, as plain code (``x``, ``B``).
"""

from __future__ import annotations

import re
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent

PICTURES = {
    "accuracy_curves.png": ROOT / "models" / "pretrained" / "accuracy_curves.png",
    "ladder.png": ROOT / "models" / "pretrained" / "ladder.png",
    "img/overlap_curves.png": ROOT / "benchmarks" / "overlap_curves.png",
}

#: a Sphinx role as mkdocstrings renders it: ``:func:<code>~pkg.name</code>``
SPHINX_ROLE = re.compile(r":(?:func|mod|class|meth|attr|data|exc|obj):<code>(~?)([^<]*)</code>")


def on_files(files, config):
    for uri, source in PICTURES.items():
        files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files


def on_page_content(html, page, config, files):
    def plain(match):
        name = match.group(2).rsplit(".", 1)[-1] if match.group(1) else match.group(2)
        return f"<code>{name}</code>"

    return SPHINX_ROLE.sub(plain, html)
