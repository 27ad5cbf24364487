"""XML written back as the file wrote it: ElementTree drops the prefixes and the layout of a parsed file, so this
serialiser puts back each namespace declaration where the file made it, the file's own prefixes, and new elements
indented like their neighbours (XMP sidecars are edited by several programs; a rewrite must not look foreign).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET


def _escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return text


def _line_indent(text: str | None) -> str | None:
    """The blanks that `text` ends with after its last line break; None when it has no line break or
    other characters follow it."""
    if not text or "\n" not in text:
        return None
    tail = text.rsplit("\n", 1)[-1]
    return None if tail.strip() else tail


def _qualify(
    name: str, attribute: bool, scope: dict[str, str], own: list[tuple[str, str]], prefixes: dict[str, str]
) -> str:
    """`name` ("{uri}local") as the file writes it: the prefix bound in `scope`, else a new one (from `prefixes`,
    numbered when taken) that is bound in `scope` and added to `own`, the element's own declarations."""
    if not name.startswith("{"):
        if not attribute and scope.get(""):  # an unqualified element under a default namespace
            own.append(("", ""))
            scope[""] = ""
        return name
    uri, local = name[1:].split("}", 1)
    for prefix, bound in scope.items():
        if bound == uri and (prefix or not attribute):
            return f"{prefix}:{local}" if prefix else local
    prefix, n = prefixes.get(uri, "ns"), 1
    while (prefix if n == 1 else f"{prefix}{n}") in scope:
        n += 1
    prefix = prefix if n == 1 else f"{prefix}{n}"
    own.append((prefix, uri))
    scope[prefix] = uri
    return f"{prefix}:{local}"


def write_element(
    element: ET.Element,
    declarations: dict[ET.Element, list[tuple[str, str]]],
    scope: dict[str, str],
    indent: str | None,
    out: list[str],
    prefixes: dict[str, str],
) -> None:
    """Serialize `element` with the prefixes the file used, declaring namespaces where it declared them; a
    namespace the file never declared gets its usual prefix from `prefixes` (uri -> prefix).

    `indent` is the blank space before the element on its line (None when it does not start a line); a start
    tag with many attributes is laid out one per line below it, as Adobe's XMP toolkit and exiv2 write them.
    """
    if element.tag is ET.Comment:
        out.append(f"<!--{element.text or ''}-->")
    elif element.tag is ET.ProcessingInstruction:
        out.append(f"<?{element.text or ''}?>")
    else:
        own = list(declarations.get(element, []))
        scope = {**scope, **dict(own)}
        name = _qualify(element.tag, False, scope, own, prefixes)
        attributes = [(_qualify(key, True, scope, own, prefixes), value) for key, value in element.attrib.items()]
        first = [(key, value) for key, value in attributes if key.startswith("rdf:")]  # rdf:about stays up front
        items = [f'{key}="{_escape(value, True)}"' for key, value in first]
        declared = [f'xmlns{":" + prefix if prefix else ""}="{_escape(uri, True)}"' for prefix, uri in own]
        rest = [f'{key}="{_escape(value, True)}"' for key, value in attributes if (key, value) not in first]
        if indent is None or len(declared) + len(rest) < 3:
            out.append(" ".join([f"<{name}", *items, *declared, *rest]))
        else:
            lines = [" ".join([f"<{name}", *items])]
            lines += [f"{indent}  {item}" for item in declared] + [f"{indent} {item}" for item in rest]
            out.append("\n".join(lines))
        if element.text or len(element):
            out.append(">" + _escape(element.text or ""))
            for index, child in enumerate(element):
                before = element.text if index == 0 else element[index - 1].tail
                write_element(child, declarations, scope, _line_indent(before), out, prefixes)
            out.append(f"</{name}>")
        else:
            out.append("/>")
    out.append(_escape(element.tail or ""))
