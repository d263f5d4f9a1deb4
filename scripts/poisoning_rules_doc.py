"""Write docs/rules-poisoning.md from the rule table (km/insight/poisoning_rules.py).

    .venv/bin/python scripts/poisoning_rules_doc.py

tests/insight/test_poisoning_rules.py fails when the committed file differs from `render()`,
so the docs list exactly the rules the code runs."""

from __future__ import annotations

import sys
from pathlib import Path

from km.insight.poisoning_rules import RULES
from km.insight.text import visible

DOC = Path(__file__).resolve().parent.parent / "docs" / "rules-poisoning.md"

HEAD = """# Poisoning rules

`km/insight/poisoning.py` scans every MCP tool definition km sees (and that `km tools scan`
reads) with the rules below, defined as data in `km/insight/poisoning_rules.py` (this file is
generated from that table by `scripts/poisoning_rules_doc.py`). Each finding carries the rule
id, a severity (`info < low < medium < high < critical`), the kind `poisoning`, the field it
was found in as a dotted path (`description`, `inputSchema.properties.path.description`,
`annotations.title`, `inputSchema.properties.x.enum[2]`), the character span within that
field's text, and a short excerpt with hidden characters made visible (`<U+200B>`, `<ESC>`,
`\\n`, `<40 spaces>`).

## What is scanned

Every string of a definition: `name`, `title`, `description`, every string under
`annotations`, `inputSchema` and `outputSchema` (descriptions, titles, defaults, enums,
examples, `const`) and any other key, plus property names and object keys themselves. Text
rules run after invisible characters (zero-width, bidi, tags, soft hyphens) are stripped, so
`ig<U+200B>nore` still reads `ignore`; spans point into the original text. Schemas are walked
iteratively to a depth of 64 and at most 20,000 strings per definition; text rules read the
first 200,000 characters of a field. Hex and base64 runs that decode to prose are decoded and
scanned again.

## How signals combine

Some rules are weak signals that report nothing alone ("signal only" below): a credential
path in a filesystem tool's description is benign, "before any other call" can be an honest
ordering hint. They count in two combinations:

- **P130** (critical): a credential path or secret (P120, or P121 within 300 characters)
  together with an instruction to move data (P122, P123, P124) or a side-channel parameter
  (P126) in the same definition.
- **P199** (medium, high or critical): findings of two or more attack categories (length
  aside) whose weights (low 1, medium 2, high 3, critical 4; the strongest per category) sum
  to 3 (medium), 5 (high) or 7 (critical), reported only when that is worse than every
  single finding.

P105 (pressure) counts one level higher (medium) when three or more different phrases meet
in one field. P141 and P150 ignore an ordering hint that names a sibling tool of the same
server (`other_tools`); P101, P103 and P104 ignore a phrase in quotes (a security tool
describing an attack); P103 and P123 ignore a phrase right after "not"/"never".

## Rules

| id | severity | kind | finding |
|---|---|---|---|
"""

TAIL = """## Malformed input

A definition list is any JSON value: entries that are not objects, names that are missing,
not strings or duplicated, schemas that are not objects, nesting past the limit and string
counts past the budget give P190-P192 findings; nothing raises. `km tools scan` answers
invalid JSON with a one-line error and exit status 2.
"""


def render() -> str:
    rules = sorted(RULES, key=lambda r: r.id)
    out = [HEAD]
    for r in rules:
        severity = r.severity + ("" if r.alone else " (signal only)")
        out.append(f"| [{r.id}](#{r.id.lower()}) | {severity} | {r.category} | {r.title} |\n")
    out.append("\n")
    for r in rules:
        severity = r.severity + ("" if r.alone else ", signal only")
        how = "patterns over every string" if r.check == "text" else f"structural check `{r.check}`"
        example = visible(r.example, 200).replace("`", "'")
        out.append(f"### {r.id}\n\n**{r.title}** ({severity}; category `{r.category}`; {how})\n\n")
        out.append(f"- Matches: {r.matches}.\n- Why: {r.why}\n- Example: `{example}`\n\n")
    out.append(TAIL)
    return "".join(out)


def main() -> int:
    DOC.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
