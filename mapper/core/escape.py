"""One escaping function per language latmap writes, so a name is always data, never code.

Stage, owner and event names, metric names, label values, units, help texts, URLs and paths
come from the spec, from a source's answers or from the command line: any of them may hold
``${__user.login}``, ``{{``, a newline or a character XML forbids. Each function below takes
such a text and answers it fit for one target, saying what the target would otherwise
expand or break. The caller picks the function for the language it writes and applies it
to the user's text only, never to latmap's own templates (``{{le}}`` in a legend,
``${datasource}``, ``${__value.raw}``, ``{{ $value }}``), which keep working.

Every function is the identity on ordinary names (letters, digits, ``-``, ``_``, ``.``,
spaces), so the generated files of an ordinary stream do not change.

=========================  ==========================================  =======================
target                     what it would expand or break               function
=========================  ==========================================  =======================
Grafana provisioning YAML  ``$VAR``, ``${VAR}``, ``$__env{}``,           :func:`grafana_provisioning`
                           ``$__file{}``, ``$__vault{}``
Grafana dashboard text     ``$var``, ``${var:fmt}``, ``[[var]]``,       :func:`grafana_text`
                           ``${__user.login}``, legend ``{{label}}``
Grafana data link URL      the same, in a URL                          :func:`grafana_url`
PromQL string literal      ``\\``, ``"``, newline; and Grafana's ``$``    :func:`promql_string`
Go template (alert rules)  ``{{ ... }}`` actions                        :func:`go_template`
YAML scalar / comment      newlines, ``#``, ``:``; non-printables       :func:`yaml_scalar`, :func:`yaml_comment`
XML / SVG                  markup; characters XML 1.0 forbids          :func:`xml_text`, :func:`xml_attr`
HTML                       markup; the same characters                 :func:`html_text`
Markdown                   tables, code, emphasis, HTML tags           :func:`markdown_text`, :func:`markdown_code`
terminal                   ESC/OSC sequences                           :func:`mapper.core.redact.for_terminal`
=========================  ==========================================  =======================
"""

from __future__ import annotations

import html
import re
from xml.sax.saxutils import escape as _sax_escape
from xml.sax.saxutils import quoteattr as _sax_quoteattr

import yaml

from mapper.core.redact import printable

__all__ = ["REPLACEMENT", "ZWSP", "go_template", "grafana_provisioning", "grafana_text", "grafana_url", "html_text",
           "markdown_code", "markdown_text", "promql_string", "xml_attr", "xml_chars", "xml_text", "yaml_comment",
           "yaml_scalar"]

#: What a character the target cannot hold becomes.
REPLACEMENT = "\ufffd"
#: ZERO WIDTH SPACE: invisible where Grafana shows the text, but not a word character, so no
#: variable pattern of Grafana's (``\$(\w+)``, ``\${...}``, ``\[\[\w+\]\]``) matches across it.
ZWSP = "\u200b"

# XML 1.0 (section 2.2, Char) allows #x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] |
# [#x10000-#x10FFFF]: everything else (C0 controls, lone surrogates, U+FFFE/U+FFFF) makes the
# document ill-formed. YAML's printable set is the same but for NEL (U+0085), which it allows.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NOT_YAML_COMMENT = re.compile("[\ud800-\udfff\ufffe\uffff]")
_GRAFANA_TOKEN = re.compile(r"\$|\[(?=\[)|\{(?=\{)")
_GO_ACTION = re.compile(r"\{\{|\{\Z")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#!~])")


# --------------------------------------------------------------------------- XML, HTML


def xml_chars(text: str) -> str:
    """``text`` with every character XML 1.0 forbids (C0 controls but tab, newline and
    carriage return; lone surrogates U+D800-U+DFFF; U+FFFE, U+FFFF) replaced by U+FFFD.

    No escape can carry them: a character reference (``&#xFFFE;``) to a forbidden character
    is itself ill-formed, so a parser refuses the whole file. A lone surrogate cannot even be
    encoded as UTF-8, so without this the write itself would fail."""
    return _NOT_XML.sub(REPLACEMENT, text)


def xml_text(text: str) -> str:
    """Character data for an XML or SVG element: ``&``, ``<``, ``>`` as entities (so ``]]>``
    and ``<script>`` stay text) and forbidden characters replaced (:func:`xml_chars`).
    The same output as :func:`xml.sax.saxutils.escape` for any well-formed text."""
    return _sax_escape(xml_chars(text))


def xml_attr(text: str) -> str:
    """An XML attribute value *with its quotes*, as :func:`xml.sax.saxutils.quoteattr` writes it
    (``&``, ``<``, ``>``, the quote, tab and line breaks as references), forbidden characters
    replaced (:func:`xml_chars`)."""
    return _sax_quoteattr(xml_chars(text))


def html_text(text: str, quote: bool = True) -> str:
    """Text (or, with ``quote``, a double- or single-quoted attribute value) in HTML and in
    the SVGs embedded in it: :func:`html.escape`, after :func:`xml_chars`, so an inline SVG
    stays well-formed XML too and the page can be written as UTF-8."""
    return html.escape(xml_chars(text), quote)


# --------------------------------------------------------------------------- Markdown


def markdown_text(text: str) -> str:
    """``text`` as literal Markdown on one line (a table cell, a list item), without HTML
    entities: every character Markdown could act on (emphasis, links, images, code, tables,
    headings) backslash-escaped, as are a ``<`` that could open an HTML tag and an ``&`` that
    could start an entity; control characters and line breaks made spaces. A stage, owner or
    event name and a remote message show as written and never as markup (``<img src=x
    onerror=...>`` stays text, ``a|b`` stays in its cell), while ``<=`` and ``>2.58s`` read
    as they are."""
    escaped = _MD_SPECIAL.sub(r"\\\1", printable(text))
    escaped = re.sub(r"<(?=[A-Za-z/!?])", r"\\<", escaped)
    return re.sub(r"&(?=[A-Za-z#])", r"\\&", escaped)


def markdown_code(text: str, fenced: bool = False) -> str:
    """``text`` fit for inline code (``fenced=False``: no backtick, which would close the
    span; each becomes ``'``) or for a line of a fenced block (``fenced=True``: no run of
    three backticks, which would close the fence); one line either way. Inside code nothing
    else is markup, so nothing else needs escaping."""
    line = printable(text)
    return line.replace("`" * 3, "'" * 3) if fenced else line.replace("`", "'")


# --------------------------------------------------------------------------- YAML


def yaml_scalar(text: str) -> str:
    """``text`` as one double-quoted YAML scalar, written by PyYAML's emitter: newlines,
    quotes, backslashes and every non-printable character escaped, so ``#``, ``:`` or
    ``"\\nsources: evil"`` in a name cannot end the value, start a comment or add a key.
    For an ASCII name the same text as :func:`json.dumps`."""
    out = yaml.safe_dump(text, default_style='"', width=float("inf"), allow_unicode=True)
    return str(out).removesuffix("\n").removesuffix("\n...")


def yaml_comment(text: str) -> str:
    """``text`` fit to follow ``#`` on one line of a YAML file: line breaks (``\\n``, ``\\r``,
    NEL, U+2028/U+2029) and control characters made spaces, so the text cannot end the
    comment and start a key, and the characters YAML refuses anywhere in a stream (lone
    surrogates, U+FFFE, U+FFFF) replaced by U+FFFD, so the file still loads. Nothing else is
    special inside a comment."""
    return _NOT_YAML_COMMENT.sub(REPLACEMENT, printable(text))


# --------------------------------------------------------------------------- Grafana


def grafana_provisioning(text: str) -> str:
    """A value of a Grafana provisioning file (data sources, dashboard providers): every
    ``$`` written ``$$``.

    Grafana expands environment variables (``$VAR``, ``${VAR}``) and the ``$__env{}``,
    ``$__file{}`` and ``$__vault{}`` providers in every value of these files after reading
    the YAML; a URL or ``--out`` path holding ``$__file{/etc/shadow}`` would be replaced by
    the file's content. Its documented escape ("If you have a literal $ in your value and
    want to avoid interpolation, $$ can be used"): it splits the value on ``$$``, expands each
    part and joins them with ``$``, so doubling every ``$`` gives back the text exactly.
    Apply it last, after any dashboard-level escape (:func:`grafana_url`), and to latmap's own
    placeholders too (``${__value.raw}`` is then read back as written)."""
    return text.replace("$", "$$")


def grafana_text(text: str) -> str:
    """Text in a dashboard (panel and row titles, descriptions, legends, annotation names):
    a zero-width space (:data:`ZWSP`) after every ``$`` and between ``[[`` and ``{{``.

    Grafana interpolates template variables in these fields (``$name``, ``${name}``,
    ``${name:fmt}``, ``[[name]]``, built-ins such as ``${__user.login}``, ``$__range``,
    ``$__interval``) and a Prometheus legend's ``{{label}}``; there is no escape character.
    Breaking each token with a character that is invisible but not part of a variable name
    leaves the text as people read it while no pattern matches. Not for PromQL (use
    :func:`promql_string` for label values) or URLs (:func:`grafana_url`), where an invisible
    character would change what is matched or opened."""
    return _GRAFANA_TOKEN.sub(lambda m: m.group(0) + ZWSP, text)


def grafana_url(text: str) -> str:
    """A URL (or the user's part of a URL template) in a Grafana data link: ``$`` as ``%24``
    and the first ``[`` of ``[[`` as ``%5B``.

    Grafana interpolates variables in data links as in any text (``${__value.raw}``,
    ``${__user.login}``, ``$var``, ``[[var]]``); in a URL the percent escape is the invisible
    one: the browser and the viewer read ``%24`` as ``$``. A single ``[`` is kept (an IPv6
    host, ``http://[::1]:3000``). Apply it to the user's parts only, around latmap's own
    placeholders."""
    return re.sub(r"\[(?=\[)", "%5B", text.replace("$", "%24"))


# --------------------------------------------------------------------------- PromQL


def promql_string(text: str) -> str:
    """The inside of a double-quoted PromQL string (a label value): backslash, ``"``, newline
    and carriage return escaped as Go does, ``$`` as ``\\x24`` and the first ``[`` of ``[[``
    as ``\\x5b``; lone surrogates (no label value can hold one) replaced by U+FFFD.

    Prometheus reads ``\\x24`` as ``$`` (Go string escapes), so the selector still matches
    the real label value, while Grafana, which interpolates ``$var``, ``${...}`` and
    ``[[var]]`` in a dashboard's query *before* Prometheus sees it, finds no variable. The
    same text works in rule files (Prometheus does not template an ``expr``)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    out = re.sub(r"\[(?=\[)", r"\\x5b", out.replace("$", "\\x24"))
    return re.sub("[\ud800-\udfff]", REPLACEMENT, out)


# --------------------------------------------------------------------------- Go templates


def go_template(text: str) -> str:
    """Literal text in a Go template (a Prometheus alert's annotations and labels, which
    Prometheus expands with ``text/template``): every ``{{`` written ``{{ "{{" }}``, and a
    trailing ``{`` written ``{{ "{" }}`` so that text placed before latmap's own
    ``{{ $value }}`` cannot join it into ``{{{``.

    A stray ``{{`` (a stage named ``b{{ x``) is an unterminated action: ``promtool check
    rules`` fails and Prometheus refuses the rule file; ``{{ .ExternalURL }}`` would be
    expanded. Go templates have no escape character; printing the delimiter as a string
    constant is the documented way. ``}}`` outside an action is plain text."""
    return _GO_ACTION.sub(lambda m: '{{ "' + m.group(0) + '" }}', text)
