"""Sphinx tweaks for the book's site. It works offline: sphinx-thebe is dropped (its script points at a CDN and
is declared twice by Jupyter Book 1, a console error), and it opens in light mode. The reader's buttons follow
the one repository URL of _config.yml: with none, no repository or launch button (no dead links); with one,
launch buttons open the chapter's source notebook (notebooks/NN.ipynb, which is in the repository; the executed
book/executed/NN.ipynb is not). Each chapter's download menu offers that source beside the executed notebook.
The `shiftlab-bibtex` directive writes the BibTeX entry of CITATION.cff, with the package's version."""
from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from docutils import nodes
from sphinx.util.docutils import SphinxDirective


def _is_thebe(asset) -> bool:
    name = getattr(asset, "filename", None) or ""
    body = getattr(asset, "attributes", {}).get("body", "")
    return "thebe" in name or "THEBE_JS_URL" in body


EXECUTED, SOURCES = "book/executed/", "notebooks/"


def chapter_source(pagename: str) -> str | None:
    """The repository path of a chapter page's source notebook, or None for a page that is not a chapter."""
    return f"{SOURCES}{pagename[len(EXECUTED):]}.ipynb" if pagename.startswith(EXECUTED) else None


def _walk(buttons):
    for b in buttons:
        yield b
        yield from _walk(b.get("buttons", []))


def point_launch_at_sources(buttons: list[dict]) -> None:
    """Rewrite every launch link (an absolute URL) of a chapter page from its executed notebook to its source."""
    for b in _walk(buttons):
        url = b.get("url", "")
        if url.startswith(("http://", "https://")) and EXECUTED in url:
            b["url"] = url.replace(EXECUTED, SOURCES)


def add_source_download(buttons: list[dict], url: str) -> None:
    """Add the chapter's source notebook (outputs stripped) to the page's download menu."""
    for b in _walk(buttons):
        items = b.get("buttons", [])
        if any(i.get("label") in ("download-source-button", "download-notebook-button") for i in items):
            items.append({"type": "link", "url": url, "text": "source (.ipynb)", "tooltip": "Chapter source",
                          "icon": "fas fa-code", "label": "download-chapter-source-button"})
            return


def _page_context(app, pagename, templatename, context, doctree) -> None:
    context["default_mode"] = "light"
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if not _is_thebe(a)]
    source = chapter_source(pagename)
    if source and "header_buttons" in context:
        point_launch_at_sources(context["header_buttons"])
        add_source_download(context["header_buttons"], f"{context['pathto']('_sources', 1)}/{source}")


def buttons_for_repository(options: dict) -> dict:
    """Theme options with the repository button and launch buttons on only when a repository URL is set."""
    options = dict(options)
    has_url = bool((options.get("repository_url") or "").strip())
    options["use_repository_button"] = has_url
    if not has_url:
        options["launch_buttons"] = {}
    return options


def _config_inited(app, config) -> None:
    config.html_theme_options = buttons_for_repository(config.html_theme_options)


def _copy_sources(app, exception) -> None:
    """Put the chapters' source notebooks beside the executed ones, for the download menu."""
    if exception or app.builder.format != "html":
        return
    root = Path(app.srcdir)
    for page in app.env.found_docs:
        source = chapter_source(page)
        if source and (root / source).is_file():
            target = Path(app.outdir) / "_sources" / source
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / source, target)


def _person(author: dict) -> str:
    """A CFF author as BibTeX writes a name: 'Family, Given', or an entity's name in braces (kept as one name)."""
    if "name" in author:
        return "{" + author["name"] + "}"
    return ", ".join(p for p in (author.get("family-names"), author.get("given-names")) if p)


def bibtex(cff: dict, version: str, year: str, url: str = "") -> str:
    """The @software entry of a CITATION.cff (as a dict) at `version`, with its year and, when given, its URL."""
    fields = {"author": " and ".join(_person(a) for a in cff["authors"]), "title": "{" + cff["title"] + "}",
              "version": version, "year": year}
    if url:
        fields["url"] = url
    width = max(map(len, fields))
    body = ",\n".join(f"  {k.ljust(width)} = {{{v}}}" for k, v in fields.items())
    return f"@software{{shiftlab,\n{body}\n}}"


class BibTeX(SphinxDirective):
    """The BibTeX entry of the project's CITATION.cff, version from shiftlab.__version__."""

    def run(self):
        import shiftlab

        path = Path(self.env.srcdir) / "CITATION.cff"
        self.env.note_dependency(str(path))
        cff = yaml.safe_load(path.read_text())
        url = self.config.html_theme_options.get("repository_url", "") or ""
        text = bibtex(cff, shiftlab.__version__, str(self.config.copyright), url)
        block = nodes.literal_block(text, text, language="bibtex")
        return [block]


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("html-page-context", _page_context, priority=900)
    app.connect("build-finished", _copy_sources)
    app.add_directive("shiftlab-bibtex", BibTeX)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
