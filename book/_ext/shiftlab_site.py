"""Sphinx tweaks for a site that works offline: drop sphinx-thebe (its script points at a CDN and
is declared twice by Jupyter Book 1, a console error), and open in light mode."""


def _is_thebe(asset) -> bool:
    name = getattr(asset, "filename", None) or ""
    body = getattr(asset, "attributes", {}).get("body", "")
    return "thebe" in name or "THEBE_JS_URL" in body


def _page_context(app, pagename, templatename, context, doctree) -> None:
    context["default_mode"] = "light"
    for key in ("script_files", "css_files"):
        if key in context:
            context[key] = [a for a in context[key] if not _is_thebe(a)]


def setup(app):
    app.connect("html-page-context", _page_context, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
