"""Sentence-level poisoning checks (rules P142-P145): features that are harmless apart and an
attack together in one sentence, e.g. a reference to another tool plus "set ... to", or an
order to the model plus private data plus a parameter to put it in.

Pure: `sentence_hits(text, own)` over text already stripped of invisible characters."""

from __future__ import annotations

from km.insight import poisoning_rules as R

_URGE = R._ci(r"\b(?:always|regardless|instead|every|all|must|also|secretly|silently|first)\b")


def sentence_hits(
    text: str, own: str | None, words: set[str]
) -> tuple[list[tuple[str, int, int]], bool]:
    """(rule id, start, end) of each sentence rule that fires (first sentence only), and
    whether the verdict depended on the tool's own name (then it must not be cached)."""
    hits: list[tuple[str, int, int]] = []
    used_own = False
    # Whole-text prefilter: a rule whose features are not all somewhere in the text cannot
    # fire in any one sentence.
    want_142 = (
        not words.isdisjoint(R.TAMPER_WORDS)
        and (R.TAMPER.search(text) is not None or R.ALSO_ACT.search(text) is not None)
        and R.OTHER_REF.search(text) is not None
    )
    want_143 = (
        not words.isdisjoint(R.STRONG_WORDS)
        and R.STRONG.search(text) is not None
        and R.MODEL_IMP.search(text) is not None
        and (R.TARGET.search(text) is not None or R.SEND_TO_DEST.search(text) is not None)
    )
    want_144 = not words.isdisjoint(R.DECEIVE_WORDS) and R.DECEIVE.search(text) is not None
    want_145 = (
        not words.isdisjoint(R.BEFORE_WORDS)
        and R.BEFORE_ALL.search(text) is not None
        and R.MUST_CALL_SELF.search(text) is not None
    )
    if not (want_142 or want_143 or want_144 or want_145):
        return hits, used_own
    found: set[str] = set()
    for m in R.SENTENCE.finditer(text):
        sentence, start, end = m.group(0), m.start(), m.end()
        if want_142 and "P142" not in found and R.OTHER_REF.search(sentence):
            tamper = R.TAMPER.search(sentence) or R.ALSO_ACT.search(sentence)
            if tamper and (
                R.DEST.search(sentence) or R.STRONG.search(sentence) or _URGE.search(sentence)
            ):
                found.add("P142")
                hits.append(("P142", start, end))
        if (
            want_143
            and "P143" not in found
            and R.STRONG.search(sentence)
            and R.MODEL_IMP.search(sentence)
            and R.ACTION.search(sentence)
            and (R.TARGET.search(sentence) or R.SEND_TO_DEST.search(sentence))
        ):
            found.add("P143")
            hits.append(("P143", start, end))
        if want_144 and "P144" not in found and R.DECEIVE.search(sentence):
            found.add("P144")
            hits.append(("P144", start, end))
        if want_145 and "P145" not in found and R.BEFORE_ALL.search(sentence):
            call = R.MUST_CALL_SELF.search(sentence)
            if call is not None:
                name = call.group("name")
                if name is not None:
                    used_own = True
                if name is None or (own is not None and name.strip("`'\"") == own):
                    found.add("P145")
                    hits.append(("P145", start, end))
    return hits, used_own
