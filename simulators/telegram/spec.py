"""The Bot API method and type list as data, and the checks every request must pass.

The real server reads every parameter as a string, whatever the transport (query string,
urlencoded form, multipart form or a JSON body, whose non-string values it re-serialises), and
parses it as the method needs. We do the same: a request becomes ``{name: str | Upload}``, and
each value is decoded by the types the spec gives its field — ``Integer``, ``Float``,
``Boolean``, ``String``, ``InputFile`` (an uploaded part, or a string file id / URL when the
field also allows ``String``), ``Array of X`` and object types (a serialised JSON value checked
field by field, with subtypes tried in turn). The same checker validates what the simulator
itself returns, so a reply that python-telegram-bot could not parse is our bug, found by tests.

Deliberately stricter than the real server: an unknown parameter, an unknown field inside a JSON
object, ``"abc"`` for an Integer or ``"yes"`` for a Boolean are refused (the real server ignores
the first two and reads the others as 0 / false). Such a request is a bug in the caller even when
Telegram would let it through, so a test should fail on it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from simulators.telegram.errors import bad_request

DEFAULT_SPEC = Path(__file__).resolve().parent.parent / "spec" / "telegram-bot-api-10.0.json"

SCALARS = ("Integer", "Float", "Boolean", "True", "String", "InputFile")
INT64 = 2**63
_INTEGER = re.compile(r"[+-]?\d+")
_CONSTANT = re.compile(r'(?:always "([^"]+)"|must be ([a-z_]+)\b)')

# What the real server answers when a required parameter is missing or empty.
MISSING = {
    "chat_id": "chat_id is empty",
    "text": "message text is empty",
    "photo": "there is no photo in the request",
    "document": "there is no document in the request",
    "message_id": "message identifier is not specified",
    "file_id": "wrong file_id or the file is temporarily unavailable",
}
# How the real server names a JSON parameter it cannot parse.
JSON_LABELS = {"reply_markup": "reply keyboard markup", "entities": "entities", "caption_entities": "entities"}


@dataclass(frozen=True)
class Upload:
    """A file sent as a multipart part."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class FieldSpec:
    name: str
    types: tuple[str, ...]
    required: bool


@dataclass(frozen=True)
class MethodSpec:
    name: str
    fields: dict[str, FieldSpec]
    returns: tuple[str, ...]


@dataclass(frozen=True)
class TypeSpec:
    name: str
    fields: dict[str, FieldSpec]
    subtypes: tuple[str, ...] = ()
    constants: dict[str, str] = field(default_factory=dict)  # e.g. {"type": "photo"}


def article(type_expr: str) -> str:
    """'an Integer', 'a String', 'an Array of ...' — for error messages."""
    return ("an " if type_expr[0] in "AEIOU" else "a ") + type_expr


def _field(raw: dict) -> FieldSpec:
    return FieldSpec(raw["name"], tuple(raw["types"]), bool(raw["required"]))


def _constants(raw_fields: list[dict]) -> dict[str, str]:
    """Discriminator fields of a subtype, read from descriptions like 'always "kicked"'."""
    out = {}
    for f in raw_fields:
        if f["name"] in ("type", "status", "source") and f["types"] == ["String"]:
            m = _CONSTANT.search(f["description"])
            if m:
                out[f["name"]] = m.group(1) or m.group(2)
    return out


class BotApiSpec:
    """Methods (looked up case-insensitively, as the real server does) and types of one Bot API version."""

    def __init__(self, data: dict) -> None:
        self.version: str = data["version"]
        self.methods = {
            name.lower(): MethodSpec(
                name, {f["name"]: _field(f) for f in m.get("fields", [])}, tuple(m.get("returns", []))
            )
            for name, m in data["methods"].items()
        }
        self.types = {
            name: TypeSpec(
                name,
                {f["name"]: _field(f) for f in t.get("fields", [])},
                tuple(t.get("subtypes", [])),
                _constants(t.get("fields", [])),
            )
            for name, t in data["types"].items()
        }

    @classmethod
    @cache
    def load(cls, path: Path = DEFAULT_SPEC) -> BotApiSpec:
        return cls(json.loads(Path(path).read_text(encoding="utf-8")))

    def method(self, name: str) -> MethodSpec | None:
        return self.methods.get(name.lower())

    # -- requests -------------------------------------------------------------------------

    def decode_call(
        self, method: MethodSpec, raw: dict[str, str], files: dict[str, Upload], *, strict: bool = True
    ) -> dict[str, Any]:
        """Check one call's parameters against the spec and return them decoded.

        Raises ``ApiError`` (400) on the first problem: an unknown parameter (when
        ``strict``), a missing required one, or a value of the wrong type."""
        if strict:
            self._refuse_unknown(method, raw, files)
        params: dict[str, Any] = {}
        for name, spec in method.fields.items():
            value: str | Upload | None = files.get(name, raw.get(name))
            if value is None or value == "":
                if spec.required:
                    raise bad_request(MISSING.get(name, f'parameter "{name}" is required'))
                continue
            params[name] = self._decode_param(spec, value, files)
        return params

    def _refuse_unknown(self, method: MethodSpec, raw: dict[str, str], files: dict[str, Upload]) -> None:
        for name in raw:
            if name not in method.fields:
                raise bad_request(f'unknown parameter "{name}" for method {method.name}')
        attached = " ".join(v for v in raw.values() if "attach://" in v)
        for name in files:
            if name not in method.fields and f"attach://{name}" not in attached:
                raise bad_request(f'unknown parameter "{name}" for method {method.name}')

    def _decode_param(self, spec: FieldSpec, value: str | Upload, files: dict[str, Upload]) -> Any:
        if isinstance(value, Upload):
            if "InputFile" in spec.types:
                return value
            raise bad_request(f'parameter "{spec.name}" must be {" or ".join(spec.types)}, not an uploaded file')
        first_problem = None
        for type_expr in (t for t in spec.types if t in SCALARS):
            ok, decoded, problem = self._decode_scalar(spec.name, type_expr, value, files)
            if ok:
                return decoded
            first_problem = first_problem or problem
        json_types = [t for t in spec.types if t not in SCALARS]
        if json_types:
            return self._decode_json(spec.name, json_types, value, files)
        raise bad_request(first_problem or f'parameter "{spec.name}" has a wrong type')

    def _decode_scalar(
        self, name: str, type_expr: str, value: str, files: dict[str, Upload]
    ) -> tuple[bool, Any, str | None]:
        """Decode one string as one scalar type: (ok, value, problem)."""
        wrong = f'parameter "{name}" must be {article(type_expr)}'
        if type_expr == "String":
            return True, value, None
        if type_expr == "Integer":
            if _INTEGER.fullmatch(value.strip()) and abs(int(value)) < INT64:
                return True, int(value), None
            return False, None, wrong
        if type_expr == "Float":
            try:
                number = float(value)
            except ValueError:
                return False, None, wrong
            return (True, number, None) if math.isfinite(number) else (False, None, wrong)
        if type_expr in ("Boolean", "True"):
            lowered = value.strip().lower()
            if lowered in ("true", "1") or (type_expr == "Boolean" and lowered in ("false", "0")):
                return True, lowered in ("true", "1"), None
            return False, None, wrong
        # InputFile given as a string: only "attach://<part>" naming an uploaded part.
        attached = value[len("attach://") :] if value.startswith("attach://") else None
        if attached is not None and attached in files:
            return True, files[attached], None
        return False, None, f'parameter "{name}" must be an uploaded file'

    def _decode_json(self, name: str, types: list[str], value: str, files: dict[str, Upload]) -> Any:
        """A JSON-serialised parameter: parse it once, then check it against its types."""
        label = JSON_LABELS.get(name, name)
        try:
            decoded = json.loads(value)
        except ValueError:
            raise bad_request(f"can't parse {label} JSON object") from None
        problem = self.union_problem(types, decoded, where=f'parameter "{name}"', files=files)
        if problem:
            raise bad_request(f"can't parse {label}: {problem}")
        return decoded

    # -- JSON values ----------------------------------------------------------------------

    def problem(self, type_expr: str, value: Any, *, where: str = "value", files: dict | None = None) -> str | None:
        """Why ``value`` (decoded JSON) is not of ``type_expr``, or None when it is."""
        if type_expr.startswith("Array of "):
            if not isinstance(value, list):
                return f"{where} must be an Array"
            inner = type_expr[len("Array of ") :]
            for i, item in enumerate(value):
                found = self.problem(inner, item, where=f"{where}[{i}]", files=files)
                if found:
                    return found
            return None
        if type_expr in SCALARS:
            return None if _scalar_ok(type_expr, value, files) else f"{where} must be {article(type_expr)}"
        spec = self.types.get(type_expr)
        if spec is None:
            return f"{where} has unknown type {type_expr}"
        if not isinstance(value, dict):
            return f"{where} must be an Object ({type_expr})"
        if spec.subtypes:
            return self._subtype_problem(spec, value, where, files)
        return self._object_problem(spec, value, where, files)

    def union_problem(
        self, types: tuple[str, ...] | list[str], value: Any, *, where: str, files: dict | None = None
    ) -> str | None:
        """None when ``value`` matches one of ``types``; else the most telling problem."""
        problems = [self.problem(t, value, where=where, files=files) for t in types]
        if any(p is None for p in problems):
            return None
        candidates = [p for t, p in zip(types, problems) if self._looks_like(t, value)]
        return (candidates or problems)[0]

    def _looks_like(self, type_expr: str, value: Any) -> bool:
        """An object carrying all of a type's required fields is probably meant as that type."""
        spec = self.types.get(type_expr)
        if spec is None or not isinstance(value, dict):
            return False
        return all(n in value for n, f in spec.fields.items() if f.required)

    def _subtype_problem(self, spec: TypeSpec, value: dict, where: str, files: dict | None) -> str | None:
        problems = []
        for name in spec.subtypes:
            sub = self.types[name]
            if any(value.get(k) != v for k, v in sub.constants.items()):
                continue
            found = self.problem(name, value, where=where, files=files)
            if found is None:
                return None
            problems.append(found)
        return problems[0] if problems else f"{where} is not any of {', '.join(spec.subtypes)}"

    def _object_problem(self, spec: TypeSpec, value: dict, where: str, files: dict | None) -> str | None:
        for key in value:
            if key not in spec.fields:
                return f'{where}: unknown field "{key}" in {spec.name}'
        for key, const in spec.constants.items():
            if key in value and value[key] != const:
                return f'field "{key}" of {spec.name} must be "{const}"'
        for name, f in spec.fields.items():
            if name not in value:
                if f.required:
                    return f'field "{name}" of {spec.name} is required'
                continue
            found = self.union_problem(f.types, value[name], where=f'field "{name}" of {spec.name}', files=files)
            if found:
                return found
        return None


def _scalar_ok(type_expr: str, value: Any, files: dict | None) -> bool:
    if type_expr == "Integer":
        return isinstance(value, int) and not isinstance(value, bool) and abs(value) < INT64
    if type_expr == "Float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_expr == "Boolean":
        return isinstance(value, bool)
    if type_expr == "True":
        return value is True
    if type_expr == "String":
        return isinstance(value, str)
    # InputFile inside JSON: "attach://<part>" naming an uploaded part, or a file id / URL
    # (those come through the String alternative the spec always lists beside it).
    if isinstance(value, str) and value.startswith("attach://"):
        return files is not None and value[len("attach://") :] in files
    return False
