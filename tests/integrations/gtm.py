"""Reading a Google Tag Manager custom template (``.tpl``) the way GTM's export format defines it.

The file is a sequence of ``___SECTION___`` headers, each followed by its body: ``___INFO___``,
``___TEMPLATE_PARAMETERS___`` and ``___WEB_PERMISSIONS___`` are JSON, the sandboxed code is
JavaScript, and ``___TESTS___`` is the YAML GTM writes (a list of scenarios with ``name`` and a
``code: |-`` block, then ``setup: |-``), read here without a YAML library for that fixed shape.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "integrations" / "gtm" / "template.tpl"
SANDBOX_JS = Path(__file__).with_name("gtm_sandbox.js")
# The origin the template ships with; installers replace it with their ad server's.
PLACEHOLDER_ORIGIN = "https://ads.example"

_HEADER = re.compile(r"^___([A-Z_]+)___[ \t]*$", re.MULTILINE)


def split_sections(text: str) -> dict[str, str]:
    """Section name (without underscores) to its body, in file order; text before the first header is dropped."""
    parts = _HEADER.split(text)
    return {name: body.strip("\n") for name, body in zip(parts[1::2], parts[2::2])}


def _value(node: dict) -> object:
    """A permission parameter's value in GTM's typed encoding (1 string, 2 list, 3 map, 8 boolean)."""
    kind = node["type"]
    if kind == 1:
        return node["string"]
    if kind == 2:
        return [_value(item) for item in node.get("listItem", [])]
    if kind == 3:
        return {_value(k): _value(v) for k, v in zip(node["mapKey"], node["mapValue"])}
    if kind == 8:
        return node["boolean"]
    raise ValueError(f"unknown permission value type {kind}")


def _block(lines: list[str], start: int, indent: str) -> tuple[str, int]:
    """The lines of a YAML ``|-`` block from ``start`` that are blank or indented by ``indent``."""
    body: list[str] = []
    i = start
    while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent)):
        body.append(lines[i][len(indent):])
        i += 1
    return "\n".join(body).rstrip("\n"), i


@dataclass(frozen=True)
class Template:
    sections: dict[str, str]

    @property
    def info(self) -> dict:
        return json.loads(self.sections["INFO"])

    @property
    def parameters(self) -> list[dict]:
        return json.loads(self.sections["TEMPLATE_PARAMETERS"])

    @property
    def code(self) -> str:
        return self.sections["SANDBOXED_JS_FOR_WEB_TEMPLATE"]

    def fields(self) -> dict[str, dict]:
        """Every field by name, those inside groups included."""
        found: dict[str, dict] = {}
        pending = list(self.parameters)
        while pending:
            param = pending.pop(0)
            if param["type"] == "GROUP":
                pending.extend(param["subParams"])
            else:
                found[param["name"]] = param
        return found

    def permissions(self) -> dict[str, dict[str, object]]:
        """Permission id to its decoded parameters."""
        decoded = {}
        for entry in json.loads(self.sections["WEB_PERMISSIONS"]):
            instance = entry["instance"]
            decoded[instance["key"]["publicId"]] = {p["key"]: _value(p["value"]) for p in instance.get("param", [])}
        return decoded

    def sandbox_permissions(self) -> dict[str, object]:
        """What the browser stand-in of the sandbox (``gtm_sandbox.js``) enforces."""
        perms = self.permissions()
        pixel = perms.get("send_pixel", {})
        layer = perms.get("read_data_layer", {})
        return {
            "sendPixel": pixel.get("urls", []) if pixel.get("allowedUrls") == "specific" else [],
            "dataLayerKeys": layer.get("keyPatterns", []) if layer.get("allowedKeys") == "specific" else [],
            "getUrl": perms.get("get_url", {}).get("urlParts") == "any",
            "getReferrer": perms.get("get_referrer", {}).get("urlParts") == "any",
            "logging": "logging" in perms,
        }

    def scenarios(self) -> tuple[str, list[dict[str, str]]]:
        """(setup code, [{"name", "body"}]) of the ``___TESTS___`` section."""
        lines = self.sections["TESTS"].split("\n")
        setup, scenarios, i = "", [], 0
        while i < len(lines):
            line = lines[i]
            if line.startswith("- name: "):
                scenarios.append({"name": line[len("- name: "):].strip(), "body": ""})
                i += 1
            elif line == "  code: |-":
                scenarios[-1]["body"], i = _block(lines, i + 1, "    ")
            elif line == "setup: |-":
                setup, i = _block(lines, i + 1, "  ")
            elif not line.strip() or line in ("scenarios:", "setup: ''", "scenarios: []"):
                i += 1
            else:
                raise ValueError(f"unexpected line in ___TESTS___: {line!r}")
        return setup, scenarios


def load(origin: str | None = None) -> Template:
    """The shipped template; with ``origin``, as installed for that ad server (the placeholder replaced)."""
    text = TEMPLATE.read_text(encoding="utf-8")
    if origin is not None:
        text = text.replace(PLACEHOLDER_ORIGIN, origin)
    return Template(split_sections(text))
