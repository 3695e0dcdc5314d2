"""Parser for the OpenFGA modeling language (DSL), schema 1.1: the text's type definitions
(:mod:`authz.embedded.definitions`); :func:`authz.embedded.model.parse_dsl` validates them
into a model.

Follows the grammar of openfga/language (``OpenFGALexer.g4`` / ``OpenFGAParser.g4``): the same
line clean-up (full-line ``#`` comments and trailing `` #`` comments removed), the same
longest-match tokenisation with keywords taking precedence over identifiers of equal length,
and the same rules for mixing operators (``or`` / ``and`` / ``but not`` cannot be mixed
without parentheses, a direct assignment ``[...]`` can only come first).

``condition`` blocks and ``with`` clauses are parsed so that such models are recognised, then
refused: the embedded engine does not evaluate conditions. ``module`` headers and
``extend type`` are refused likewise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from authz.embedded.definitions import (
    CONDITIONS_UNSUPPORTED,
    MODULES_UNSUPPORTED,
    ComputedUserset,
    Difference,
    Intersection,
    RelationDef,
    Rewrite,
    This,
    TupleToUserset,
    TypeDef,
    TypeRestriction,
    Union,
    invalid_model,
)

# Token kinds (names as in OpenFGALexer.g4).
NEWLINE: Final = "NEWLINE"
WS: Final = "WHITESPACE"
EOF: Final = "EOF"
IDENTIFIER: Final = "IDENTIFIER"
EXTENDED_IDENTIFIER: Final = "EXTENDED_IDENTIFIER"

_STRING = (
    r'"""(?:\\.|[^\\])*?"""'
    r"|'''(?:\\.|[^\\])*?'''"
    r'|"(?:\\.|[^"\\\n\r])*"'
    r"|'(?:\\.|[^'\\\n\r])*'"
)
_EXP = r"[eE][+-]?[0-9]+"

# Default lexer mode, in the grammar's order (earlier rules win ties of equal length).
_DEFAULT_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("HASH", r"#"),
        ("COLON", r":"),
        ("COMMA", r","),
        ("AND", r"and"),
        ("OR", r"or"),
        ("BUT_NOT", r"but not"),
        ("FROM", r"from"),
        ("MODULE", r"module"),
        ("MODEL", r"model"),
        ("SCHEMA", r"schema"),
        ("SCHEMA_VERSION", r"[0-9]+\.[0-9]+"),
        ("EXTEND", r"extend"),
        ("TYPE", r"type"),
        ("CONDITION", r"condition"),
        ("RELATIONS", r"relations"),
        ("RELATION", r"relation"),
        ("DEFINE", r"define"),
        ("WITH", r"with"),
        ("EQUALS", r"=="),
        ("NOT_EQUALS", r"!="),
        ("IN", r"in"),
        ("LESS", r"<"),
        ("LESS_EQUALS", r"<="),
        ("GREATER_EQUALS", r">="),
        ("GREATER", r">"),
        ("LOGICAL_AND", r"&&"),
        ("LOGICAL_OR", r"\|\|"),
        ("LBRACKET", r"\["),
        ("RBRACKET", r"\]"),
        ("LBRACE", r"\{"),
        ("RBRACE", r"\}"),
        ("LPAREN", r"\("),
        ("RPAREN", r"\)"),
        ("DOT", r"\."),
        ("MINUS", r"-"),
        ("EXCLAM", r"!"),
        ("QUESTIONMARK", r"\?"),
        ("PLUS", r"\+"),
        ("STAR", r"\*"),
        ("SLASH", r"/"),
        ("PERCENT", r"%"),
        ("CEL_TRUE", r"true"),
        ("CEL_FALSE", r"false"),
        ("NUL", r"null"),
        (WS, r"[\t \f]+"),
        ("CEL_COMMENT", r"//[^\n]*"),
        ("NUM_FLOAT", rf"[0-9]+\.[0-9]+(?:{_EXP})?|[0-9]+{_EXP}|\.[0-9]+(?:{_EXP})?"),
        ("NUM_INT", r"0x[0-9a-fA-F]+|[0-9]+"),
        ("NUM_UINT", r"(?:0x[0-9a-fA-F]+|[0-9]+)[uU]"),
        ("STRING", rf"[rR]?(?:{_STRING})"),
        ("BYTES", rf"[bB](?:{_STRING})"),
        (IDENTIFIER, r"[A-Za-z_][A-Za-z0-9_-]*"),
        (EXTENDED_IDENTIFIER, r"[A-Za-z_](?:[/.-]?[A-Za-z0-9_]+)*"),
        (NEWLINE, r"(?:[\t \f]*(?:\r?\n|\r|\f)[\t \f]*)+"),
    )
)

# Lexer mode right after the ``condition`` keyword, up to the closing parenthesis.
_CONDITION_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern))
    for kind, pattern in (
        ("RPAREN", r"\)"),
        ("CONDITION_PARAM_CONTAINER", r"map|list"),
        ("CONDITION_PARAM_TYPE", r"bool|string|int|uint|double|duration|timestamp|ipaddress"),
        ("LESS", r"<"),
        ("GREATER", r">"),
        ("LPAREN", r"\("),
        ("COLON", r":"),
        ("COMMA", r","),
        (WS, r"[\t \f]+"),
        (IDENTIFIER, r"[A-Za-z_][A-Za-z0-9_-]*"),
    )
)

_NAME_KINDS = frozenset(
    {"MODEL", "SCHEMA", "TYPE", "RELATION", IDENTIFIER, "MODULE", "EXTEND", EXTENDED_IDENTIFIER}
)


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    line: int  # 1-based
    column: int  # 0-based


def _clean(text: str) -> str:
    """The language's pre-processing: drop comment lines and trailing `` #`` comments."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        stripped = line.lstrip(" ")
        if not stripped or stripped.startswith("#"):
            lines.append("")
        else:
            lines.append(line.split(" #", 1)[0].rstrip(" "))
    return "\n".join(lines).rstrip("\n")


def tokenize(text: str) -> list[Token]:
    """Tokens of a cleaned DSL text (hidden-channel comments dropped, ``EOF`` last)."""
    tokens: list[Token] = []
    pos, line, col = 0, 1, 0
    condition_mode = False
    while pos < len(text):
        rules = _CONDITION_RULES if condition_mode else _DEFAULT_RULES
        best_kind, best_len = "", 0
        for kind, pattern in rules:
            m = pattern.match(text, pos)
            if m is not None and len(m.group()) > best_len:
                best_kind, best_len = kind, len(m.group())
        if best_len == 0:
            raise _syntax_error(line, col, f"token recognition error at: '{text[pos]}'")
        value = text[pos : pos + best_len]
        if best_kind != "CEL_COMMENT":
            tokens.append(Token(best_kind, value, line, col))
        if best_kind == "CONDITION":
            condition_mode = True
        elif condition_mode and best_kind == "RPAREN":
            condition_mode = False
        newlines = value.count("\n") + (value.count("\r") - value.count("\r\n"))
        if newlines:
            line += newlines
            col = len(value) - max(value.rfind("\n"), value.rfind("\r")) - 1
        else:
            col += best_len
        pos += best_len
    tokens.append(Token(EOF, "<EOF>", line, col))
    return tokens


def _syntax_error(line: int, column: int, message: str) -> Exception:
    return invalid_model(f"syntax error at line={line}, column={column}: {message}")


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.uses_conditions = False
        self.uses_modules = False
        self.conditions: set[str] = set()

    # -- token helpers ------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> Token:
        index = min(self.pos + offset, len(self.tokens) - 1)
        return self.tokens[index]

    def at(self, *kinds: str, offset: int = 0) -> bool:
        return self.peek(offset).kind in kinds

    def accept(self, kind: str) -> Token | None:
        if self.peek().kind == kind:
            tok = self.tokens[self.pos]
            self.pos += 1
            return tok
        return None

    def expect(self, kind: str, what: str | None = None) -> Token:
        tok = self.peek()
        if tok.kind != kind:
            self.fail(f"expecting {what or kind}")
        self.pos += 1
        return tok

    def fail(self, message: str) -> None:
        tok = self.peek()
        text = tok.text.encode("unicode_escape").decode("ascii")
        raise _syntax_error(tok.line, tok.column, f"unexpected input '{text}', {message}")

    def name(self, what: str) -> str:
        tok = self.peek()
        if tok.kind not in _NAME_KINDS:
            self.fail(f"expecting {what}")
        self.pos += 1
        return tok.text

    # -- grammar ------------------------------------------------------------------------------

    def main(self) -> tuple[str, list[TypeDef]]:
        self.accept(WS)
        self.accept(NEWLINE)
        if self.at("MODULE"):
            self.pos += 1
            self.expect(WS)
            self.name("a module name")
            self.uses_modules = True
            schema = "1.2"
        else:
            self.expect("MODEL", "'model'")
            self.expect(NEWLINE)
            self.expect("SCHEMA", "'schema'")
            self.expect(WS)
            schema = self.expect("SCHEMA_VERSION", "a schema version").text
            self.accept(WS)
        types: list[TypeDef] = []
        while self.at(NEWLINE) and self.at("TYPE", "EXTEND", offset=1):
            types.append(self.type_def())
        while self.at(NEWLINE) and self.at("CONDITION", offset=1):
            self.condition()
        self.accept(NEWLINE)
        if not self.at(EOF):
            self.fail("expecting 'type' or 'condition' on a new line")
        return schema, types

    def type_def(self) -> TypeDef:
        self.expect(NEWLINE)
        if self.accept("EXTEND"):
            self.uses_modules = True
            self.expect(WS)
        self.expect("TYPE", "'type'")
        self.expect(WS)
        type_name = self.name("a type name")
        relations: list[RelationDef] = []
        if self.at(NEWLINE) and self.at("RELATIONS", offset=1):
            self.pos += 2
            if not (self.at(NEWLINE) and self.at("DEFINE", offset=1)):
                self.fail("expecting 'define' on a new line")
            seen: set[str] = set()
            while self.at(NEWLINE) and self.at("DEFINE", offset=1):
                rel = self.relation_declaration()
                if rel.name in seen:
                    raise invalid_model(f"'{rel.name}' is already defined in '{type_name}'")
                seen.add(rel.name)
                relations.append(rel)
        return TypeDef(type_name, relations)

    def relation_declaration(self) -> RelationDef:
        self.expect(NEWLINE)
        self.expect("DEFINE")
        self.expect(WS)
        rel_name = self.name("a relation name")
        self.accept(WS)
        self.expect("COLON", "':'")
        self.accept(WS)
        restrictions: list[TypeRestriction] = []
        rewrite = self.relation_def(restrictions, allow_direct=True)
        if not self.at(NEWLINE, EOF):
            self.fail("expecting 'or', 'and', 'but not' or the end of the line")
        return RelationDef(rel_name, rewrite, tuple(restrictions))

    def relation_def(self, restrictions: list[TypeRestriction], *, allow_direct: bool) -> Rewrite:
        if allow_direct and self.at("LBRACKET"):
            first: Rewrite = self.direct_assignment(restrictions)
        elif self.at("LPAREN"):
            first = self.parenthesised(restrictions, allow_direct=allow_direct)
        else:
            first = self.grouping()
        if not (self.at(WS) and self.at("OR", "AND", "BUT_NOT", offset=1)):
            return first
        operator = self.peek(1).kind
        operands = [first]
        while self.at(WS) and self.at(operator, offset=1):
            self.pos += 2
            self.expect(WS)
            operands.append(
                self.parenthesised(restrictions, allow_direct=False)
                if self.at("LPAREN")
                else self.grouping()
            )
            if operator == "BUT_NOT":
                break
        if self.at(WS) and self.at("OR", "AND", "BUT_NOT", offset=1):
            self.fail("operators 'or', 'and' and 'but not' cannot be mixed without parentheses")
        if operator == "OR":
            return Union(tuple(operands))
        if operator == "AND":
            return Intersection(tuple(operands))
        return Difference(operands[0], operands[1])

    def parenthesised(self, restrictions: list[TypeRestriction], *, allow_direct: bool) -> Rewrite:
        self.expect("LPAREN")
        self.accept(WS)
        inner = self.relation_def(restrictions, allow_direct=allow_direct)
        self.accept(WS)
        self.expect("RPAREN", "')'")
        return inner

    def grouping(self) -> Rewrite:
        computed = self.name("a relation name, '[' or '('")
        if self.at(WS) and self.at("FROM", offset=1):
            self.pos += 2
            self.expect(WS)
            tupleset = self.name("a tupleset relation name")
            return TupleToUserset(tupleset, computed)
        return ComputedUserset(computed)

    def direct_assignment(self, restrictions: list[TypeRestriction]) -> Rewrite:
        self.expect("LBRACKET")
        self.accept(WS)
        restrictions.clear()
        restrictions.append(self.type_restriction())
        self.accept(WS)
        while self.accept("COMMA"):
            self.accept(WS)
            restrictions.append(self.type_restriction())
            self.accept(WS)
        self.expect("RBRACKET", "',' or ']'")
        return This()

    def type_restriction(self) -> TypeRestriction:
        self.accept(NEWLINE)
        type_name = self.name("a type")
        relation, wildcard, condition = "", False, ""
        if self.accept("COLON"):
            self.expect("STAR", "'*'")
            wildcard = True
        elif self.accept("HASH"):
            relation = self.name("a relation name")
        if self.at(WS) and self.at("WITH", offset=1):
            self.pos += 2
            self.expect(WS)
            condition = self.expect(IDENTIFIER, "a condition name").text
            self.uses_conditions = True
        self.accept(NEWLINE)
        return TypeRestriction(type_name, relation, wildcard, condition)

    def condition(self) -> None:
        self.expect(NEWLINE)
        self.expect("CONDITION")
        self.uses_conditions = True
        self.expect(WS)
        name = self.expect(IDENTIFIER, "a condition name").text
        if name in self.conditions:
            raise invalid_model(f"condition '{name}' is already defined in the model")
        self.conditions.add(name)
        self.accept(WS)
        self.expect("LPAREN", "'('")
        self.accept(WS)
        self.condition_parameter()
        self.accept(WS)
        while self.accept("COMMA"):
            self.accept(WS)
            self.condition_parameter()
            self.accept(WS)
        self.accept(NEWLINE)
        self.expect("RPAREN", "')'")
        self.accept(WS)
        self.expect("LBRACE", "'{'")
        depth_guard = 0
        while not self.at("RBRACE", EOF):
            self.pos += 1
            depth_guard += 1
        if depth_guard == 0:
            self.fail("expecting a condition expression")
        self.expect("RBRACE", "'}'")

    def condition_parameter(self) -> None:
        self.accept(NEWLINE)
        self.expect(IDENTIFIER, "a parameter name")
        self.accept(WS)
        self.expect("COLON", "':'")
        self.accept(WS)
        if self.accept("CONDITION_PARAM_CONTAINER"):
            self.expect("LESS", "'<'")
            self.expect("CONDITION_PARAM_TYPE", "a parameter type")
            self.expect("GREATER", "'>'")
        else:
            self.expect("CONDITION_PARAM_TYPE", "a parameter type")


def parse_definitions(text: str) -> tuple[str, list[TypeDef]]:
    """The schema version and type definitions of a model written in the OpenFGA DSL, not
    yet validated as a model (:func:`authz.embedded.model.parse_dsl` builds and validates
    the :class:`~authz.embedded.model.AuthorizationModel`).

    Raises :class:`~authz.ports.AuthzValidationError` (``invalid_authorization_model``) on a
    syntax error, on a relation defined twice in a type, and on models that use conditions
    or modules (which the embedded engine does not support).
    """
    parser = _Parser(tokenize(_clean(text)))
    schema, types = parser.main()
    if parser.uses_modules:
        raise invalid_model(MODULES_UNSUPPORTED)
    if parser.uses_conditions:
        raise invalid_model(CONDITIONS_UNSUPPORTED)
    return schema, types
