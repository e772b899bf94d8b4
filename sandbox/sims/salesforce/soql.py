"""SOQL syntax: the lexer and a recursive-descent parser for the subset an integration uses.

Grammar (SOQL and SOSL Reference, "SOQL SELECT Syntax"):

    query      := SELECT item (',' item)* FROM name [WHERE cond] [ORDER BY order (',' order)*]
                  [LIMIT n] [OFFSET n]
    item       := path | '(' subquery ')' | COUNT '(' ')'
    path       := name ('.' name)*                       relationship fields: Account.Name, Owner.Email
    cond       := term (AND term)* | term (OR term)*     mixing AND and OR needs parentheses
    term       := NOT term | '(' cond ')' | path op value | path [NOT] IN '(' value (',' value)* ')'
    op         := = | != | <> | < | <= | > | >= | LIKE
    value      := 'string' | number | date | datetime | NULL | TRUE | FALSE | TODAY | LAST_N_DAYS:n …
    order      := path [ASC | DESC] [NULLS FIRST | NULLS LAST]

Literals follow "Quoted String Escape Sequences" (sforce_api_calls_soql_select_quotedstringescapes.htm):
``\\n \\r \\t \\b \\f \\" \\' \\\\`` and ``\\uXXXX`` anywhere, ``\\%`` and ``\\_`` only in a LIKE pattern, "If you
use a backslash character in any other context, an error occurs"; the single quote is reserved and
must be escaped ("Reserved Characters"), so ``'O'Brien'`` is a syntax error, never a shorter string.
Date and datetime literals are unquoted: ``2026-11-30``, ``2026-11-30T12:00:00Z`` or ``…+01:00`` ("Date
Formats and Date Literals"); a datetime without a zone does not parse.

Syntax errors become MALFORMED_QUERY with the service's layout: the query line, a caret under the
offending column, ``ERROR at Row:1:Column:N`` and the reason (as in restforce/restforce#688 and the
``unexpected token: q`` of xjsender/SublimeApex#23).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

_KEYWORDS = frozenset(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "AND",
        "OR",
        "NOT",
        "IN",
        "LIKE",
        "INCLUDES",
        "EXCLUDES",
        "ORDER",
        "BY",
        "ASC",
        "DESC",
        "NULLS",
        "FIRST",
        "LAST",
        "LIMIT",
        "OFFSET",
        "NULL",
        "TRUE",
        "FALSE",
        "GROUP",
        "HAVING",
        "WITH",
        "FOR",
        "USING",
    ]
)
# Relative date literals ("Date Formats and Date Literals"), the simple ones an integration uses.
DATE_LITERALS = frozenset({"TODAY", "YESTERDAY", "TOMORROW"})
N_DATE_LITERALS = frozenset({"LAST_N_DAYS", "NEXT_N_DAYS"})
_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?(?:Z|[+-]\d{2}:\d{2})")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATE_START = re.compile(r"\d{4}-\d{2}-\d{2}T[0-9:.]*")
_NUMBER = re.compile(r"[+-]?\d+(?:\.\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SIMPLE_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "f": "\f", '"': '"', "'": "'", "\\": "\\"}


class SoqlSyntaxError(ValueError):
    def __init__(self, reason: str, pos: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.pos = pos


def locate(query: str, pos: int, reason: str) -> str:
    """The service's error layout: the line, a caret under the column, ``ERROR at Row:R:Column:C``, the reason."""
    pos = max(0, min(pos, len(query)))
    row = query.count("\n", 0, pos) + 1
    line_start = query.rfind("\n", 0, pos) + 1
    line_end = query.find("\n", pos)
    line = query[line_start : line_end if line_end != -1 else len(query)]
    column = pos - line_start + 1
    return f"\n{line}\n{' ' * (column - 1)}^\nERROR at Row:{row}:Column:{column}\n{reason}"


# ----------------------------------------------------------------------------- tokens


@dataclass(frozen=True)
class Token:
    kind: str  # NAME, KEYWORD, STRING, NUMBER, DATE, DATETIME, PUNCT, EOF
    text: str  # source text (keywords upper-cased)
    pos: int
    value: Any = None  # STRING: the unescaped text; NUMBER: float
    pattern: str | None = None  # STRING: the LIKE pattern as a regular expression
    like_only: bool = False  # STRING: used \% or \_ (valid only in LIKE)


def tokenize(query: str) -> list[Token]:
    """Tokens up to the first lexical error, which becomes an ERROR token: the parser reports whatever it
    meets first, so ``'O'Brien'`` is "unexpected token: Brien", as the service says, not a lexer error."""
    tokens: list[Token] = []
    try:
        _scan(query, tokens)
    except SoqlSyntaxError as exc:
        tokens.append(Token("ERROR", "<ERROR>", exc.pos, exc))
    return tokens


def _scan(query: str, tokens: list[Token]) -> None:
    i, n = 0, len(query)
    while i < n:
        char = query[i]
        if char.isspace():
            i += 1
            continue
        if char == "'":
            token, i = _string(query, i)
            tokens.append(token)
            continue
        if char == '"':
            raise _no_viable(query, i)
        start = _DATE_START.match(query, i)
        if start:
            match = _DATETIME.match(query, i)
            if not match:  # e.g. 2016-07-31T04:17:54 with no zone: the service stops where the zone should be
                raise _no_viable(query, start.end())
            tokens.append(Token("DATETIME", match.group(), i, match.group()))
            i = match.end()
            continue
        match = _DATE.match(query, i)
        if match and not (match.end() < n and (query[match.end()].isalnum())):
            tokens.append(Token("DATE", match.group(), i, match.group()))
            i = match.end()
            continue
        match = _NUMBER.match(query, i)
        if match and (char.isdigit() or (char in "+-" and _follows_operator(tokens))):
            tokens.append(Token("NUMBER", match.group(), i, float(match.group())))
            i = match.end()
            continue
        match = _NAME.match(query, i)
        if match:
            word = match.group()
            upper = word.upper()
            kind = "KEYWORD" if upper in _KEYWORDS else "NAME"
            tokens.append(Token(kind, upper if kind == "KEYWORD" else word, i))
            i = match.end()
            continue
        two = query[i : i + 2]
        if two in ("!=", "<>", "<=", ">="):
            tokens.append(Token("PUNCT", two, i))
            i += 2
            continue
        if char in "(),.=<>:":
            tokens.append(Token("PUNCT", char, i))
            i += 1
            continue
        raise _no_viable(query, i)
    tokens.append(Token("EOF", "<EOF>", n))


def _no_viable(query: str, pos: int) -> SoqlSyntaxError:
    char = query[pos] if pos < len(query) else "<EOF>"
    return SoqlSyntaxError(f"line 1:{pos + 1} no viable alternative at character '{char}'", pos)


def _follows_operator(tokens: list[Token]) -> bool:
    return bool(tokens) and tokens[-1].text in ("=", "!=", "<>", "<", "<=", ">", ">=", "(", ",")


def _string(query: str, start: int) -> tuple[Token, int]:
    """A quoted literal from ``start`` (the opening quote) to its closing quote."""
    value: list[str] = []
    pattern: list[str] = []
    like_only = False
    i = start + 1
    while i < len(query):
        char = query[i]
        if char == "'":
            text = query[start : i + 1]
            return Token("STRING", text, start, "".join(value), "".join(pattern), like_only), i + 1
        if char == "\\":
            nxt = query[i + 1 : i + 2]
            if nxt.lower() in _SIMPLE_ESCAPES or nxt in _SIMPLE_ESCAPES:
                literal = _SIMPLE_ESCAPES.get(nxt.lower(), _SIMPLE_ESCAPES.get(nxt, ""))
                value.append(literal)
                pattern.append(re.escape(literal))
                i += 2
                continue
            if nxt in ("%", "_"):
                like_only = True
                value.append(nxt)
                pattern.append(re.escape(nxt))
                i += 2
                continue
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", query[i + 2 : i + 6]):
                literal = chr(int(query[i + 2 : i + 6], 16))
                value.append(literal)
                pattern.append(re.escape(literal))
                i += 6
                continue
            end = query.find("'", i + 1)
            literal_text = query[start : end + 1 if end != -1 else len(query)]
            raise SoqlSyntaxError(
                f"Invalid string literal {literal_text}. Illegal character sequence '\\{nxt}' in string literal.", i
            )
        value.append(char)
        pattern.append(".*" if char == "%" else "." if char == "_" else re.escape(char))
        i += 1
    raise SoqlSyntaxError(f"line 1:{len(query) + 1} mismatched character '<EOF>' expecting \"'\"", len(query))


# ----------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Path:
    parts: tuple[str, ...]
    pos: int

    @property
    def text(self) -> str:
        return ".".join(self.parts)


@dataclass(frozen=True)
class Value:
    kind: Literal["string", "number", "date", "datetime", "null", "boolean", "relative"]
    value: Any
    pos: int
    text: str
    pattern: str | None = None
    like_only: bool = False


@dataclass(frozen=True)
class Comparison:
    path: Path
    op: str  # = != < <= > >= LIKE IN NOT IN INCLUDES EXCLUDES
    value: Value | tuple[Value, ...]


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class Junction:
    op: Literal["AND", "OR"]
    operands: tuple[Condition, ...]


Condition = Comparison | Not | Junction


@dataclass(frozen=True)
class Order:
    path: Path
    descending: bool
    nulls_last: bool


@dataclass
class Query:
    source: str  # the object name, or the child relationship name in a subquery
    source_pos: int
    fields: list[Path | Query] = field(default_factory=list)
    where: Condition | None = None
    order: list[Order] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None
    count: bool = False
    pos: int = 0


# ----------------------------------------------------------------------------- parser


class Parser:
    def __init__(self, query: str) -> None:
        self.query = query
        self.tokens = tokenize(query)
        self.i = 0

    @property
    def tok(self) -> Token:
        token = self.tokens[self.i]
        if token.kind == "ERROR":
            raise token.value
        return token

    def advance(self) -> Token:
        token = self.tok
        self.i += 1
        return token

    def unexpected(self, token: Token | None = None) -> SoqlSyntaxError:
        token = token or self.tok
        return SoqlSyntaxError(f"unexpected token: {token.text}", token.pos)

    def is_keyword(self, *words: str) -> bool:
        return self.tok.kind == "KEYWORD" and self.tok.text in words

    def expect_keyword(self, word: str) -> Token:
        if not self.is_keyword(word):
            raise self.unexpected()
        return self.advance()

    def expect_punct(self, text: str) -> Token:
        if self.tok.kind != "PUNCT" or self.tok.text != text:
            raise self.unexpected()
        return self.advance()

    # ----- statements -----
    def parse(self) -> Query:
        query = self.select(subquery=False)
        if self.tok.kind != "EOF":
            raise self.unexpected()
        return query

    def select(self, *, subquery: bool) -> Query:
        start = self.expect_keyword("SELECT")
        items: list[Path | Query] = []
        count = False
        while True:
            if self.tok.kind == "NAME" and self.tok.text.upper() == "COUNT" and self.tokens[self.i + 1].text == "(":
                self.advance()
                self.expect_punct("(")
                self.expect_punct(")")
                count = True
            elif self.tok.kind == "PUNCT" and self.tok.text == "(":
                if subquery:
                    raise self.unexpected()
                self.advance()
                items.append(self.select(subquery=True))
                self.expect_punct(")")
            else:
                items.append(self.path())
            if self.tok.kind == "PUNCT" and self.tok.text == ",":
                self.advance()
                continue
            break
        if count and items:
            raise SoqlSyntaxError("COUNT() cannot be combined with other fields", start.pos)
        self.expect_keyword("FROM")
        if self.tok.kind != "NAME":
            raise self.unexpected()
        source = self.advance()
        query = Query(source.text, source.pos, items, count=count, pos=start.pos)
        if self.is_keyword("WHERE"):
            self.advance()
            query.where = self.condition()
        if self.is_keyword("GROUP", "HAVING", "WITH", "FOR", "USING"):
            raise SoqlSyntaxError(f"The simulator does not support {self.tok.text} clauses", self.tok.pos)
        if self.is_keyword("ORDER"):
            self.advance()
            self.expect_keyword("BY")
            query.order.append(self.order())
            while self.tok.kind == "PUNCT" and self.tok.text == ",":
                self.advance()
                query.order.append(self.order())
        if self.is_keyword("LIMIT"):
            self.advance()
            query.limit = self.integer()
        if self.is_keyword("OFFSET"):
            self.advance()
            query.offset = self.integer()
        return query

    def integer(self) -> int:
        token = self.tok
        if token.kind != "NUMBER" or not float(token.value).is_integer() or token.value < 0:
            raise self.unexpected()
        self.advance()
        return int(token.value)

    def path(self) -> Path:
        if self.tok.kind != "NAME":
            raise self.unexpected()
        first = self.advance()
        parts = [first.text]
        while self.tok.kind == "PUNCT" and self.tok.text == ".":
            self.advance()
            if self.tok.kind != "NAME":
                raise self.unexpected()
            parts.append(self.advance().text)
        return Path(tuple(parts), first.pos)

    def order(self) -> Order:
        path = self.path()
        descending = False
        if self.is_keyword("ASC", "DESC"):
            descending = self.advance().text == "DESC"
        nulls_last = False  # "By default, null values are sorted first." (ORDER BY, SOQL reference)
        if self.is_keyword("NULLS"):
            self.advance()
            if not self.is_keyword("FIRST", "LAST"):
                raise self.unexpected()
            nulls_last = self.advance().text == "LAST"
        return Order(path, descending, nulls_last)

    # ----- conditions -----
    def condition(self) -> Condition:
        first = self.term()
        if not self.is_keyword("AND", "OR"):
            return first
        op = self.tok.text
        operands = [first]
        while self.is_keyword("AND", "OR"):
            if self.tok.text != op:
                # "a AND b OR c" is ambiguous; SOQL insists on parentheses.
                raise self.unexpected()
            self.advance()
            operands.append(self.term())
        return Junction(op, tuple(operands))  # type: ignore[arg-type]

    def term(self) -> Condition:
        if self.is_keyword("NOT"):
            self.advance()
            return Not(self.term())
        if self.tok.kind == "PUNCT" and self.tok.text == "(":
            self.advance()
            inner = self.condition()
            self.expect_punct(")")
            return inner
        path = self.path()
        token = self.tok
        if token.kind == "PUNCT" and token.text in ("=", "!=", "<>", "<", "<=", ">", ">="):
            self.advance()
            op = "!=" if token.text == "<>" else token.text
            return Comparison(path, op, self.value())
        if self.is_keyword("LIKE"):
            self.advance()
            return Comparison(path, "LIKE", self.value())
        negated = False
        if self.is_keyword("NOT"):
            self.advance()
            negated = True
            if not self.is_keyword("IN"):
                raise self.unexpected()
        if self.is_keyword("IN", "INCLUDES", "EXCLUDES"):
            op = self.advance().text
            self.expect_punct("(")
            values = [self.value()]
            while self.tok.kind == "PUNCT" and self.tok.text == ",":
                self.advance()
                values.append(self.value())
            self.expect_punct(")")
            return Comparison(path, f"NOT {op}" if negated else op, tuple(values))
        raise self.unexpected()

    def value(self) -> Value:
        token = self.tok
        if token.kind == "STRING":
            self.advance()
            return Value("string", token.value, token.pos, token.text, token.pattern, token.like_only)
        if token.kind == "NUMBER":
            self.advance()
            return Value("number", token.value, token.pos, token.text)
        if token.kind in ("DATE", "DATETIME"):
            self.advance()
            return Value(token.kind.lower(), token.value, token.pos, token.text)  # type: ignore[arg-type]
        if self.is_keyword("NULL"):
            self.advance()
            return Value("null", None, token.pos, "null")
        if self.is_keyword("TRUE", "FALSE"):
            self.advance()
            return Value("boolean", token.text == "TRUE", token.pos, token.text.lower())
        if token.kind == "NAME" and token.text.upper() in DATE_LITERALS:
            self.advance()
            return Value("relative", (token.text.upper(), 0), token.pos, token.text)
        if token.kind == "NAME" and token.text.upper() in N_DATE_LITERALS:
            self.advance()
            self.expect_punct(":")
            amount = self.integer()
            return Value("relative", (token.text.upper(), amount), token.pos, f"{token.text}:{amount}")
        if token.kind == "PUNCT" and token.text == ":":
            # Bind variables (:name) exist only in Apex; the REST query resource does not know them.
            raise self.unexpected()
        raise self.unexpected()


def parse(query: str) -> Query:
    return Parser(query).parse()
