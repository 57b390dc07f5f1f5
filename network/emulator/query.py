"""The `?` query stack machine of print/getall (shared/routeros.md §2).

Each row is tested on its own. A stack of booleans starts with an endless supply of
true (popping an empty stack gives true); query words run left to right; the row
matches when no value left on the stack is false, so plain conditions are ANDed.

Values are compared typed: yes/true and no/false are booleans (librouteros sends
`?=disabled=no` while rows print `disabled=false`), numbers compare as numbers, `.id`
values as hex numbers, everything else as strings. A property the row does not have
equals only the empty string and is neither less nor greater than anything.
"""

import re

_NUMBER = re.compile(r"-?\d+(?:\.\d+)?\Z")
_ID = re.compile(r"\*[0-9A-Fa-f]+\Z")
_BOOLS = {"yes": True, "true": True, "no": False, "false": False}


class QueryError(ValueError):
    """A query word the router would refuse."""


def _typed(key: str, value: str):
    """A sortable (kind, value) pair; pairs of different kinds are compared as strings."""
    if key == ".id" and _ID.match(value):
        return ("id", int(value[1:], 16))
    low = value.lower()
    if low in _BOOLS:
        return ("bool", _BOOLS[low])
    if _NUMBER.match(value):
        return ("num", float(value) if "." in value else int(value))
    return ("str", value)


def is_plain_string(key: str, value: str) -> bool:
    """Whether `value` compares as a plain string (equal only to the same text)."""
    return _typed(key, value)[0] == "str"


def compare(key: str, left: str, right: str) -> int:
    """-1, 0 or 1 as left is less than, equal to or greater than right."""
    a, b = _typed(key, left), _typed(key, right)
    if a[0] != b[0]:
        a, b = ("str", left), ("str", right)
    return (a[1] > b[1]) - (a[1] < b[1])


def _condition(word: str):
    """A function row -> bool for one non-`#` query word (without its leading `?`)."""
    if word.startswith("-"):
        name = word[1:]
        return lambda row: name not in row
    if word[:1] in ("=", "<", ">"):
        op, rest = word[0], word[1:]
        if "=" not in rest:
            raise QueryError(f"invalid query word ?{word}")
        name, _, value = rest.partition("=")
    elif "=" in word:
        op = "="
        name, _, value = word.partition("=")
    else:
        name = word
        return lambda row: name in row
    if not name:
        raise QueryError(f"invalid query word ?{word}")
    if op == "=":

        def equal(row):
            if name not in row:
                return value == ""
            return compare(name, row[name], value) == 0

        return equal
    sign = -1 if op == "<" else 1

    def ordered(row):
        return name in row and compare(name, row[name], value) == sign

    return ordered


def _stack_ops(ops: str):
    """A function stack -> None applying one `?#` operation string to the stack in place.

    Stack top is the end of the list; index 0 means the top. Missing values are true.
    """
    program = []
    i = 0
    previous_was_index = False
    while i < len(ops):
        ch = ops[i]
        if ch.isdigit():
            j = i
            while j < len(ops) and ops[j].isdigit():
                j += 1
            index = int(ops[i:j])
            program.append(("replace" if j == len(ops) else "push", index))
            previous_was_index = True
            i = j
            continue
        if ch == ".":
            if not previous_was_index:
                program.append(("dup", 0))
        elif ch in "!&|":
            program.append((ch, 0))
        else:
            raise QueryError(f"invalid query operation ?#{ops}")
        previous_was_index = False
        i += 1

    def run(stack):
        def pop():
            return stack.pop() if stack else True

        def at(index):
            return stack[-1 - index] if index < len(stack) else True

        for op, index in program:
            if op == "push":
                stack.append(at(index))
            elif op == "replace":
                value = at(index)
                stack[:] = [value]
            elif op == "dup":
                stack.append(at(0))
            elif op == "!":
                stack.append(not pop())
            elif op == "&":
                right, left = pop(), pop()
                stack.append(left and right)
            else:
                right, left = pop(), pop()
                stack.append(left or right)

    return run


class Query:
    """Compiled query words; `matches(row)` tests one printed row (a dict of strings)."""

    def __init__(self, words):
        self.words = list(words)
        self._steps = []
        for word in self.words:
            if not word.startswith("?") or len(word) < 2:
                raise QueryError(f"invalid query word {word}")
            body = word[1:]
            if body.startswith("#"):
                self._steps.append((False, _stack_ops(body[1:])))
            else:
                self._steps.append((True, _condition(body)))

    def __bool__(self):
        return bool(self._steps)

    def matches(self, row: dict) -> bool:
        stack = []
        for is_condition, step in self._steps:
            if is_condition:
                stack.append(step(row))
            else:
                step(stack)
        return all(stack)

    def filter(self, rows):
        if not self._steps:
            return list(rows)
        return [row for row in rows if self.matches(row)]
