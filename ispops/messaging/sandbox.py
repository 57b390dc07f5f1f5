"""The sandbox message templates run in.

Staff of each ISP write these templates, and workers and web processes render them for
every message, so a template may only format what its context holds: a whitelist of
tags and filters, nothing that reaches files, URLs, other templates or the process
({% include %}, {% extends %}, {% load %}, {% debug %}, {% url %}... are refused when
the template is compiled, so a stored template that predates a rule is refused when it
is rendered), and a bound on the work one render may do: loops nest at most
MAX_LOOP_DEPTH deep, run at most MAX_ITERATIONS times in all, and stop at
MAX_RENDER_SECONDS; the text a render makes is at most MAX_OUTPUT_CHARS long. (Pure
Python rendering cannot be interrupted, so the limits are checked by the loops, the only
place a template repeats work.)
"""

import time

from django.contrib.humanize.templatetags import humanize
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters
from django.template import defaulttags as tags

MAX_TEMPLATE_CHARS = 5_000
MAX_LOOP_DEPTH = 2
MAX_ITERATIONS = 1_000
MAX_RENDER_SECONDS = 0.5
MAX_OUTPUT_CHARS = 20_000
MAX_DECIMAL_PLACES = 6


class TemplateRefused(TemplateSyntaxError):
    """A template the sandbox will not compile or finish rendering; str() says why.
    A TemplateSyntaxError, so every caller that handles a broken template handles it."""


register = Library()

# Tags: conditions, loops, local names, comments. Nothing that loads, includes, reverses
# URLs, prints the context or makes text of arbitrary size ({% lorem %}, widthratio).
for _name in ("if", "with", "comment", "firstof", "now", "spaceless"):
    register.tag(_name, tags.register.tags[_name])

# Filters whose work and output are about the size of their input. Those taking a width
# or precision (center, ljust, rjust, stringformat) could make text of any length, and
# HTML ones mean nothing in an SMS.
SAFE_FILTERS = (
    "add",
    "capfirst",
    "cut",
    "date",
    "default",
    "default_if_none",
    "divisibleby",
    "first",
    "join",
    "last",
    "length",
    "lower",
    "pluralize",
    "safe",
    "slice",
    "time",
    "timesince",
    "timeuntil",
    "title",
    "truncatechars",
    "truncatewords",
    "upper",
    "urlencode",
    "wordcount",
    "yesno",
)
for _name in SAFE_FILTERS:
    register.filter(_name, defaultfilters.register.filters[_name])
register.filter("intcomma", humanize.intcomma)

REFUSED_TAGS = (
    "autoescape",
    "block",
    "csrf_token",
    "cycle",
    "debug",
    "extends",
    "filter",
    "ifchanged",
    "include",
    "load",
    "lorem",
    "partial",
    "partialdef",
    "regroup",
    "resetcycle",
    "ssi",
    "templatetag",
    "url",
    "verbatim",
    "widthratio",
)


def _refuse(parser, token):
    name = token.split_contents()[0]
    raise TemplateRefused(f"{{% {name} %}} is not allowed in message templates")


for _name in REFUSED_TAGS:
    register.tag(_name, _refuse)


@register.filter(is_safe=True)
def floatformat(value, places=-1):
    """Django's floatformat with at most MAX_DECIMAL_PLACES decimals (it prints as many
    digits as asked, a million included)."""
    places = str(places)
    digits = places.rstrip("gu")
    try:
        wanted = int(digits)
    except ValueError:
        return defaultfilters.floatformat(value, places)
    bounded = max(-MAX_DECIMAL_PLACES, min(MAX_DECIMAL_PLACES, wanted))
    return defaultfilters.floatformat(value, f"{bounded}{places[len(digits) :]}")


@register.tag("for")
def do_for(parser, token):
    """{% for %}, nested at most MAX_LOOP_DEPTH deep, each step paid from the render's
    budget."""
    depth = sum(1 for command, _ in parser.command_stack if command == "for")
    if depth > MAX_LOOP_DEPTH:
        raise TemplateRefused(
            f"loops may be nested at most {MAX_LOOP_DEPTH} deep in message templates"
        )
    node = tags.register.tags["for"](parser, token)
    node.sequence = _MeteredSequence(node.sequence)
    return node


class _Budget:
    def __init__(self):
        self.steps_left = MAX_ITERATIONS
        self.deadline = time.monotonic() + MAX_RENDER_SECONDS

    def step(self) -> None:
        self.steps_left -= 1
        if self.steps_left < 0:
            raise TemplateRefused(f"the template's loops ran over {MAX_ITERATIONS} times")
        if time.monotonic() > self.deadline:
            raise TemplateRefused(f"the template took over {MAX_RENDER_SECONDS} s to render")


class _MeteredSequence:
    """Stands in for a {% for %} loop's sequence: what it resolves to is a list whose
    every step (forwards or reversed) is paid from the render's budget."""

    def __init__(self, sequence):
        self.sequence = sequence

    def resolve(self, context, ignore_failures=False):
        values = self.sequence.resolve(context, ignore_failures=ignore_failures)
        if values is None:
            return values
        if not hasattr(context, "sandbox_budget"):  # rendered other than through render()
            context.sandbox_budget = _Budget()
        return _Metered(values, context.sandbox_budget)

    def __str__(self):
        return str(self.sequence)


class _Metered(list):
    def __init__(self, values, budget: _Budget):
        super().__init__(values)
        self.budget = budget

    def __iter__(self):
        for value in super().__iter__():
            self.budget.step()
            yield value

    def __reversed__(self):
        for value in super().__reversed__():
            self.budget.step()
            yield value


class _SandboxEngine(Engine):
    # Engine always adds Django's own tags and filters; the sandbox has only its own.
    default_builtins = []


engine = _SandboxEngine(autoescape=False, builtins=[__name__])


def compile_template(text: str):
    """The compiled template, or TemplateRefused / TemplateSyntaxError saying why not."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateRefused(f"a message template is at most {MAX_TEMPLATE_CHARS:,} characters")
    return engine.from_string(text)


def render(template, values: dict) -> str:
    """Render a compiled template with a fresh budget; TemplateRefused past a limit."""
    context = Context(values, autoescape=False)
    context.sandbox_budget = _Budget()
    text = template.render(context)
    if len(text) > MAX_OUTPUT_CHARS:
        raise TemplateRefused(f"the message is over {MAX_OUTPUT_CHARS:,} characters")
    return text
