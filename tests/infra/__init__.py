"""Read the Bicep templates under infra/ with the tree-sitter-bicep grammar, and evaluate the parts
of them that are plain data.

The Bicep CLI cannot run here, so the infra tests look at the syntax tree instead. ``Infra`` loads
``infra/main.bicep`` and every module it calls, binds each module's parameters to the expressions
the caller passes (evaluated in the caller), and evaluates literals, ``var``/``param`` references,
objects, arrays, ``union()``, ternaries on known conditions, ``string()``, ``empty()``,
``loadJsonContent()``, ``loadTextContent()`` and ``for`` loops over known arrays. A module deployed under
``if (...)`` keeps the value of its condition (``Instance.condition``), and ``Infra(params=...)``
binds main.bicep's parameters the way azd would. Anything only Azure knows at deployment
time (resource properties, module outputs, ``uniqueString()``, ...) stays an ``Unknown`` that
carries its source text, file and line, and a string that interpolates one becomes a ``Template``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import tree_sitter
import tree_sitter_bicep

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
MAIN = INFRA / "main.bicep"


@cache
def parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def line_of(node: tree_sitter.Node) -> int:
    return node.start_point[0] + 1


def text(node: tree_sitter.Node) -> str:
    return node.text.decode()


# --------------------------------------------------------------------------------------------
# values the evaluator cannot compute
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unknown:
    """A deployment-time value: its source text and where it is."""

    source: str
    file: str
    line: int

    def __str__(self) -> str:
        return "{" + self.source + "}"


@dataclass(frozen=True)
class Call(Unknown):
    """A call to a function the evaluator does not run; its arguments are evaluated."""

    name: str = ""
    args: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Template:
    """A string interpolating unknown values: literal parts and ``Unknown`` parts, in order."""

    parts: tuple[str | Unknown, ...]

    def render(self, placeholder: str = "{?}") -> str:
        return "".join(p if isinstance(p, str) else placeholder for p in self.parts)

    def unknowns(self) -> list[Unknown]:
        return [p for p in self.parts if isinstance(p, Unknown)]

    def __str__(self) -> str:
        return "".join(p if isinstance(p, str) else str(p) for p in self.parts)


def is_known(value: Any) -> bool:
    if isinstance(value, Unknown | Template):
        return False
    if isinstance(value, dict):
        return all(is_known(v) for v in value.values())
    if isinstance(value, list):
        return all(is_known(v) for v in value)
    return True


# --------------------------------------------------------------------------------------------
# one parsed file
# --------------------------------------------------------------------------------------------


@dataclass
class Decl:
    kind: str  # param | var | resource | module | output
    name: str
    node: tree_sitter.Node
    decorators: dict[str, tree_sitter.Node] = field(default_factory=dict)  # name -> call_expression

    @property
    def line(self) -> int:
        return line_of(self.node)

    def children(self) -> list[tree_sitter.Node]:
        return [c for c in self.node.named_children if c.type != "comment"]

    @property
    def type_string(self) -> str:
        """Resource type with API version (``Microsoft.Web/sites@2024-04-01``) or module path."""
        for child in self.children()[1:]:
            if child.type == "string":
                return "".join(text(c) for c in child.named_children)
        raise ValueError(f"{self.name}: no type string")

    @property
    def resource_type(self) -> str:
        return self.type_string.split("@", 1)[0]

    @property
    def existing(self) -> bool:
        return any(c.type == "existing" for c in self.node.children)

    @property
    def value(self) -> tree_sitter.Node | None:
        """The expression after ``=`` (param default, var value, resource/module body, output)."""
        seen_eq = False
        for child in self.node.children:
            if seen_eq and child.is_named and child.type != "comment":
                return child
            if child.type == "=":
                seen_eq = True
        return None


class BicepFile:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = path.read_bytes()
        self.tree = parser().parse(self.source)
        self.root = self.tree.root_node
        self.decls: list[Decl] = []
        pending: dict[str, tree_sitter.Node] = {}
        kinds = {
            "parameter_declaration": "param",
            "variable_declaration": "var",
            "resource_declaration": "resource",
            "module_declaration": "module",
            "output_declaration": "output",
        }
        for node in self.root.named_children:
            if node.type == "comment":
                continue
            if node.type == "decorators":
                for deco in node.named_children:
                    call = next((c for c in deco.named_children if c.type == "call_expression"), None)
                    if call is not None:
                        pending[text(call.child_by_field_name("function"))] = call
                continue
            if node.type in kinds:
                name = next(c for c in node.named_children if c.type == "identifier")
                self.decls.append(Decl(kinds[node.type], text(name), node, pending))
            pending = {}

    @property
    def rel(self) -> str:
        return rel(self.path)

    def where(self, node_or_line: tree_sitter.Node | int) -> str:
        line = node_or_line if isinstance(node_or_line, int) else line_of(node_or_line)
        return f"{self.rel}:{line}"

    def of_kind(self, kind: str) -> list[Decl]:
        return [d for d in self.decls if d.kind == kind]

    def get(self, kind: str, name: str) -> Decl | None:
        return next((d for d in self.decls if d.kind == kind and d.name == name), None)

    def walk(self, node: tree_sitter.Node | None = None) -> Iterator[tree_sitter.Node]:
        stack = [node or self.root]
        while stack:
            current = stack.pop()
            yield current
            stack.extend(reversed(current.children))

    def target_scope(self) -> str:
        for node in self.root.named_children:
            if node.type == "target_scope_assignment":
                return "".join(text(c) for c in node.named_children[-1].named_children)
        return "resourceGroup"


@cache
def load(path: Path) -> BicepFile:
    return BicepFile(path)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


class Evaluator:
    """Evaluates expressions of one file, with its params bound to what the caller passes."""

    def __init__(self, file: BicepFile, bindings: dict[str, Any] | None = None) -> None:
        self.file = file
        self.bindings = bindings or {}
        self._vars: dict[str, Any] = {}
        self._busy: set[str] = set()

    def unknown(self, node: tree_sitter.Node) -> Unknown:
        return Unknown(text(node), self.file.rel, line_of(node))

    def param(self, name: str) -> Any:
        if name in self.bindings:
            return self.bindings[name]
        decl = self.file.get("param", name)
        if decl is None:
            raise KeyError(name)
        default = decl.value
        if default is None:
            return Unknown(name, self.file.rel, decl.line)
        return self.eval(default)

    def var(self, name: str) -> Any:
        if name not in self._vars:
            decl = self.file.get("var", name)
            if decl is None or name in self._busy:
                raise KeyError(name)
            self._busy.add(name)
            try:
                self._vars[name] = self.eval(decl.value)
            finally:
                self._busy.discard(name)
        return self._vars[name]

    def eval(self, node: tree_sitter.Node | None, scope: dict[str, Any] | None = None) -> Any:
        if node is None:
            return None
        scope = scope or {}
        kind = node.type
        if kind == "string":
            return self._string(node, scope)
        if kind == "number":
            return int(text(node))
        if kind == "boolean":
            return text(node) == "true"
        if kind == "null":
            return None
        if kind == "parenthesized_expression":
            return self.eval(node.named_children[0], scope)
        if kind == "object":
            result: dict[str, Any] = {}
            for prop in node.named_children:
                if prop.type != "object_property":
                    continue
                key_node, value_node = prop.named_children[0], prop.named_children[-1]
                key = text(key_node) if key_node.type == "identifier" else self.eval(key_node, scope)
                # a computed key ('${identityId}': {}) stays a Template/Unknown, so it can be traced
                result[key if isinstance(key, str | Template | Unknown) else str(key)] = self.eval(value_node, scope)
            return result
        if kind == "array":
            return [self.eval(c, scope) for c in node.named_children if c.type != "comment"]
        if kind == "identifier":
            name = text(node)
            if name in scope:
                return scope[name]
            try:
                return self.param(name)
            except KeyError:
                pass
            try:
                return self.var(name)
            except KeyError:
                return self.unknown(node)
        if kind == "ternary_expression":
            condition = self.eval(node.child_by_field_name("condition"), scope)
            if isinstance(condition, bool):
                branch = "consequence" if condition else "alternative"
                return self.eval(node.child_by_field_name(branch), scope)
            return self.unknown(node)
        if kind == "unary_expression":
            operand = self.eval(node.named_children[-1], scope)
            operator = text(node.child_by_field_name("operator") or node.children[0])
            if operator == "!" and isinstance(operand, bool):
                return not operand
            if operator == "-" and isinstance(operand, int):
                return -operand
            return self.unknown(node)
        if kind == "binary_expression":
            return self._binary(node, scope)
        if kind == "member_expression":
            obj = self.eval(node.child_by_field_name("object"), scope)
            prop = node.child_by_field_name("property")
            if isinstance(obj, dict) and prop is not None and text(prop) in obj:
                return obj[text(prop)]
            return self.unknown(node)
        if kind == "call_expression":
            return self._call(node, scope)
        return self.unknown(node)

    def _string(self, node: tree_sitter.Node, scope: dict[str, Any]) -> str | Template:
        parts: list[str | Unknown] = []
        for child in node.named_children:
            if child.type == "string_content":
                parts.append(text(child))
            elif child.type == "escape_sequence":
                raw = text(child)
                parts.append({"\\n": "\n", "\\t": "\t", "\\r": "\r", "\\$": "$"}.get(raw, raw[1:]))
            elif child.type == "interpolation":
                value = self.eval(child.named_children[0], scope)
                if isinstance(value, Template):
                    parts.extend(value.parts)
                elif isinstance(value, Unknown):
                    parts.append(value)
                elif isinstance(value, bool):
                    parts.append("true" if value else "false")
                elif isinstance(value, str | int):
                    parts.append(str(value))
                else:
                    parts.append(self.unknown(child))
        merged: list[str | Unknown] = []
        for part in parts:
            if isinstance(part, str) and merged and isinstance(merged[-1], str):
                merged[-1] += part
            else:
                merged.append(part)
        if all(isinstance(p, str) for p in merged):
            return "".join(merged)  # type: ignore[arg-type]
        return Template(tuple(merged))

    def _binary(self, node: tree_sitter.Node, scope: dict[str, Any]) -> Any:
        left, right = node.named_children[0], node.named_children[-1]
        operator = next(text(c) for c in node.children if not c.is_named)
        a, b = self.eval(left, scope), self.eval(right, scope)
        if not (is_known(a) and is_known(b)):
            return self.unknown(node)
        ops = {
            "==": lambda: a == b,
            "!=": lambda: a != b,
            "&&": lambda: a and b,
            "||": lambda: a or b,
            "??": lambda: a if a is not None else b,
        }
        return ops[operator]() if operator in ops else self.unknown(node)

    def _call(self, node: tree_sitter.Node, scope: dict[str, Any]) -> Any:
        name = text(node.child_by_field_name("function"))
        arg_nodes = [c for c in node.child_by_field_name("arguments").named_children if c.type != "comment"]
        args = [self.eval(a, scope) for a in arg_nodes]
        if name == "union" and args and all(isinstance(a, dict) for a in args):
            merged: dict[str, Any] = {}
            for arg in args:
                merged.update(arg)
            return merged
        if name == "string" and len(args) == 1 and is_known(args[0]):
            value = args[0]
            if isinstance(value, bool):  # Bicep: string(true) == 'True'
                return "True" if value else "False"
            return (
                value if isinstance(value, str) else json.dumps(value) if isinstance(value, dict | list) else str(value)
            )
        if name == "empty" and len(args) == 1 and is_known(args[0]) and args[0] is not None:
            return len(args[0]) == 0
        if name in ("toLower", "toUpper") and len(args) == 1 and isinstance(args[0], str):
            return args[0].lower() if name == "toLower" else args[0].upper()
        if name == "loadJsonContent" and args and isinstance(args[0], str):
            return json.loads((self.file.path.parent / args[0]).read_text())
        if name == "loadTextContent" and args and isinstance(args[0], str):
            return (self.file.path.parent / args[0]).read_text()
        return Call(text(node), self.file.rel, line_of(node), name, tuple(args))


# --------------------------------------------------------------------------------------------
# the whole template: main.bicep plus the modules it calls, with bound parameters
# --------------------------------------------------------------------------------------------


@dataclass
class Instance:
    """One deployed copy of a file: main.bicep, or a module with the params its caller passes."""

    file: BicepFile
    evaluator: Evaluator
    caller: Instance | None = None
    module: Decl | None = None  # the module declaration in the caller
    condition: Any = True  # value of the module's ``if (...)`` (with its callers'), True when there is none


@dataclass
class Resource:
    instance: Instance
    decl: Decl
    body: dict[str, Any]
    condition: Any = True  # value of an ``if (...)``, True when there is none

    @property
    def type(self) -> str:
        return self.decl.resource_type

    @property
    def where(self) -> str:
        return self.instance.file.where(self.decl.node)

    def get(self, *path: str) -> Any:
        value: Any = self.body
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value


def _body_and_loop(decl: Decl) -> tuple[tree_sitter.Node, tree_sitter.Node | None, tree_sitter.Node | None]:
    """(body object, for-statement node or None, if-condition node or None) of a resource/module."""
    value = decl.value
    loop = condition = None
    if value is not None and value.type == "for_statement":
        loop = value
        value = value.child_by_field_name("body") or value.named_children[-1]
    if value is not None and value.type == "if_statement":
        condition = value.named_children[0]
        value = value.named_children[-1]
    return value, loop, condition


def _instances_of(decl: Decl, evaluator: Evaluator) -> list[tuple[dict[str, Any], Any]]:
    """(evaluated body, value of its ``if`` condition) of a resource/module: one per loop item."""
    body, loop, condition = _body_and_loop(decl)
    scopes: list[dict[str, Any]] = [{}]
    if loop is not None:
        initializer = loop.child_by_field_name("initializer")
        names = [text(c) for c in initializer.named_children] if initializer.named_children else [text(initializer)]
        iterable_node = next(
            c for c in loop.named_children if c.id not in (initializer.id, body.id) and c.type != "comment"
        )
        items = evaluator.eval(iterable_node)
        if not isinstance(items, list):
            raise AssertionError(f"{evaluator.file.where(loop)}: loop over a value the tests cannot evaluate")
        scopes = [dict(zip(names, (item, index), strict=False)) for index, item in enumerate(items)]
    return [
        (evaluator.eval(body, scope), evaluator.eval(condition, scope) if condition is not None else True)
        for scope in scopes
    ]


def _both(outer: Any, inner: Any, where: str) -> Any:
    """A module's deployment condition within its caller's: False wins, True is neutral."""
    if outer is False or inner is False:
        return False
    if outer is True:
        return inner
    if inner is True:
        return outer
    file, _, line = where.rpartition(":")
    return Unknown(f"({outer}) && ({inner})", file, int(line))


class Infra:
    """main.bicep and its modules, each evaluated with the parameters its caller binds."""

    def __init__(self, main: Path = MAIN, params: dict[str, Any] | None = None) -> None:
        root_file = load(main)
        self.root = Instance(root_file, Evaluator(root_file, dict(params or {})))
        self.instances: list[Instance] = []
        self._expand(self.root)

    def _expand(self, instance: Instance) -> None:
        self.instances.append(instance)
        for decl in instance.file.of_kind("module"):
            path = (instance.file.path.parent / decl.type_string).resolve()
            module_file = load(path)
            for body, condition in _instances_of(decl, instance.evaluator):
                params = body.get("params", {})
                if not isinstance(params, dict):
                    raise AssertionError(f"{instance.file.where(decl.node)}: module params are not an object")
                condition = _both(instance.condition, condition, instance.file.where(decl.node))
                child = Instance(module_file, Evaluator(module_file, params), instance, decl, condition)
                self._expand(child)

    def files(self) -> list[BicepFile]:
        seen: dict[Path, BicepFile] = {}
        for instance in self.instances:
            seen.setdefault(instance.file.path, instance.file)
        return list(seen.values())

    def resources(self, type_prefix: str = "", *, include_existing: bool = False) -> list[Resource]:
        found = []
        for instance in self.instances:
            for decl in instance.file.of_kind("resource"):
                if decl.existing and not include_existing:
                    continue
                if not decl.resource_type.lower().startswith(type_prefix.lower()):
                    continue
                for body, condition in _instances_of(decl, instance.evaluator):
                    found.append(Resource(instance, decl, body, condition))
        return found

    def resource_of_type(self, resource_type: str) -> Resource:
        matches = [r for r in self.resources(resource_type) if r.type.lower() == resource_type.lower()]
        assert len(matches) == 1, f"expected one {resource_type}, found {[r.where for r in matches]}"
        return matches[0]

    def instance_of_file(self, file: str) -> Instance:
        return next(i for i in self.instances if i.file.rel == file)

    def origin(self, value: Any) -> tuple[Instance, Decl, str] | None:
        """Follow a deployment-time value such as ``identity.outputs.clientId`` (as a module param
        receives it) through module outputs to the resource it is read from: (instance, resource
        declaration, the rest of the expression, e.g. ``properties.clientId``)."""
        while isinstance(value, Unknown):
            owner = self.instance_of_file(value.file)
            head, _, rest = value.source.partition(".")
            module = owner.file.get("module", head)
            if module is not None and rest.startswith("outputs."):
                child = next(i for i in self.instances if i.caller is owner and i.module is module)
                output = child.file.get("output", rest.removeprefix("outputs."))
                if output is None:
                    return None
                value = child.evaluator.eval(output.value)
                continue
            resource = owner.file.get("resource", head)
            return (owner, resource, rest) if resource is not None else None
        return None


# --------------------------------------------------------------------------------------------
# shared look-ups for the tests
# --------------------------------------------------------------------------------------------

CONFIG = REPO / "shared" / "config.py"
APP_SETTINGS_DOC = INFRA / "app-settings.json"

# Run in a fresh interpreter: FunctionApp.get_functions() may be called only once per app, and
# the import also tells which of the repo's files the deployed app loads.
_FUNCTIONS_SCRIPT = """
import inspect, json, sys
import function_app
functions = []
for f in function_app.app.get_functions():
    trigger = f.get_trigger()
    user = f.get_user_function()
    functions.append({
        "name": f.get_function_name(),
        "binding": trigger.get_binding_name(),
        "route": getattr(trigger, "route", None),
        "methods": [getattr(m, "value", m) for m in (getattr(trigger, "methods", None) or [])],
        "queue": getattr(trigger, "queue_name", None),
        "connection": getattr(trigger, "connection", None),
        "json": f.get_function_json(),
        "file": inspect.getsourcefile(user),
        "line": inspect.getsourcelines(user)[1],
    })
modules = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)})
print(json.dumps({"functions": functions, "modules": modules}))
"""


@cache
def function_app_facts() -> dict[str, Any]:
    import subprocess
    import sys

    done = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _FUNCTIONS_SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"importing function_app failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@cache
def infra() -> Infra:
    return Infra()


def app_settings_resource() -> Resource:
    matches = [r for r in infra().resources("Microsoft.Web/sites/config") if r.get("name") == "appsettings"]
    assert len(matches) == 1, f"expected one sites/config 'appsettings' resource, found {[r.where for r in matches]}"
    return matches[0]


def app_settings() -> dict[str, Any]:
    resource = app_settings_resource()
    properties = resource.get("properties")
    assert isinstance(properties, dict), (
        f"{resource.where}: the app settings do not evaluate to one object: {properties}. Build them from object "
        "literals, vars, module params and union() so the tests can read every name."
    )
    return properties


@cache
def settings_doc() -> dict[str, Any]:
    return json.loads(APP_SETTINGS_DOC.read_text())


def code_settings() -> dict[str, tuple[str, Any]]:
    """Every setting the code reads: app-setting name -> (field name, pydantic FieldInfo)."""
    from shared.config import Settings

    return {str(info.validation_alias): (name, info) for name, info in Settings.model_fields.items()}


def config_where(alias: str) -> str:
    for number, line in enumerate(CONFIG.read_text().splitlines(), 1):
        if f'"{alias}"' in line:
            return f"{rel(CONFIG)}:{number}"
    return rel(CONFIG)


def json_where(path: Path, needle: str) -> str:
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return f"{rel(path)}:{number}"
    return rel(path)
