"""Text features shared by the embedded models: sentences, non-answers, code prototypes."""

from __future__ import annotations

import re
import string

from coder.relevance_reasons import CROSS_REFERENCE, NON_ANSWER, quoting_answer
from schemas import Codebook, Theme

# A sentence ends at . ! ? or a line break; abbreviations are rare in survey answers.
_SENTENCE = re.compile(r"[^.!?\n]*[^.!?\n\s][^.!?\n]*(?:[.!?]+|$)", re.MULTILINE)
# Quoted examples inside one string, e.g. "Positive: 'Quick and easy.', 'Well run.'".
_QUOTED = re.compile(r"""(?:^|[\s:,(])['"‘“](.{3,}?)['"’”](?=\s*(?:[,.;)]|$|\s[A-Z]))""")
_WORD = re.compile(r"[a-z0-9']+")

#: Plain answers that say nothing (lower-cased, punctuation stripped).
NON_ANSWERS = frozenset(
    {
        "",
        "did not answer",
        "didn't answer",
        "no answer",
        "n/a",
        "na",
        "n a",
        "none given",
        "not applicable",
        "no comment",
        "no comments",
        "nil",
        "-",
        "feedback given",
        "blank",
        "null",
    }
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of ``text`` (whitespace trimmed)."""
    spans = []
    for match in _SENTENCE.finditer(text or ""):
        raw = match.group(0)
        stripped = raw.strip()
        if stripped:
            begin = match.start() + len(raw) - len(raw.lstrip())
            spans.append((begin, begin + len(stripped)))
    if not spans and text and text.strip():
        begin = len(text) - len(text.lstrip())
        spans.append((begin, begin + len(text.strip())))
    return spans


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text`` as they appear in it (each one a substring of the text)."""
    return [text[begin:end] for begin, end in sentence_spans(text)]


# A clause ends at ; : or a dash, at a comma before a joining word (", and then", ", which"),
# or before a word that opens a new clause. A bare comma does not end one: it mostly
# separates list items ("the GPs, community pharmacists and cardiology").
_CLAUSE_BREAK = re.compile(
    r"\s*[;:\u2013\u2014]\s+|\s+-\s+|,\s+(?=(?:and|or|so|but|which|because|although|though|"
    r"while|whereas)\b)|\s+(?=(?:but|because|although|though|whereas|which|unless|otherwise|"
    r"so that|as long as)\b)",
    re.IGNORECASE,
)
#: A sentence shorter than this many words is shown whole as evidence: a reviewer reads it
#: at a glance, and cutting it would lose its subject.
LONG_SENTENCE_WORDS = 16
#: A clause shorter than this joins its neighbour ("In my view, ..." is not evidence).
MIN_CLAUSE_WORDS = 4


def clause_spans(sentence: str) -> list[tuple[int, int]]:
    """(start, end) spans of the clauses of a long sentence; [] when it is short or one clause.

    Used to show reviewers the phrase that carries a theme rather than a 40-word sentence.
    Each span is a substring of ``sentence``; fragments shorter than ``MIN_CLAUSE_WORDS``
    words are merged into a neighbour so a clause still reads as a phrase.
    """
    if len(sentence.split()) < LONG_SENTENCE_WORDS:
        return []
    raw: list[tuple[int, int]] = []
    start = 0
    for match in _CLAUSE_BREAK.finditer(sentence):
        if match.start() > start:
            raw.append((start, match.start()))
        start = match.end()
    if start < len(sentence):
        raw.append((start, len(sentence)))
    merged: list[tuple[int, int]] = []
    for begin, end in raw:
        short = len(sentence[begin:end].split()) < MIN_CLAUSE_WORDS
        if merged and (
            short or len(sentence[merged[-1][0] : merged[-1][1]].split()) < MIN_CLAUSE_WORDS
        ):
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((begin, end))
    spans = []
    for begin, end in merged:
        piece = sentence[begin:end]
        stripped = piece.strip().rstrip(",;:")
        offset = begin + len(piece) - len(piece.lstrip())
        if stripped:
            spans.append((offset, offset + len(stripped)))
    return spans if len(spans) > 1 else []


_HASHTAG = re.compile(r"#\w[\w-]*")

# Openings that answer "does it resonate?" outright, for the default stance scale. Order
# matters: "Yes, but" is partly, not resonates.
_STANCE_CUES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # "I don't know", "Not sure", "No opinion": the respondent says they have no view, which
    # the embedding reads as agreement as often as not ("know" and "sure" sound positive).
    (
        "unclear",
        re.compile(
            r"^\W*((i\s+)?(really\s+|honestly\s+)?(don'?t|do\s+not|dont)\s+know\b|"
            r"(i'?m\s+)?(not\s+sure|unsure|not\s+certain|undecided)\b|no\s+idea\b|"
            r"no\s+(opinion|view)\b|(hard|difficult)\s+to\s+(say|tell)\b|"
            r"(can'?t|cannot)\s+say\b)",
            re.IGNORECASE,
        ),
    ),
    (
        "partly",
        re.compile(
            r"^\W*(partly|partially|somewhat|to some extent|in part|sort of|mostly|"
            r"(yes|it does|this resonates|resonates|agree)\W+(but|however|although)\b)",
            re.IGNORECASE,
        ),
    ),
    (
        "does_not_resonate",
        re.compile(
            r"^\W*(no\b|not really|not at all|doesn'?t resonate|does not resonate|"
            r"this does not|disagree|i disagree|not convinced|"
            # "Definitely not", "Not for us", "Not in my experience": before "definitely"
            # reads as agreement below.
            r"(definitely|absolutely|certainly|really)\s+not\b|"
            r"not\s+(for\s+(us|me)|in\s+my\s+experience|my\s+experience)\b)",
            re.IGNORECASE,
        ),
    ),
    (
        "resonates",
        re.compile(
            r"^\W*(yes\b|absolutely|definitely|agreed?\b|strongly agree|completely|totally|"
            r"this (really |strongly )?resonates|resonates)",
            re.IGNORECASE,
        ),
    ),
)


#: Words in a stance value's id or label that place it on the default scale, so that the
#: explicit-opening cues work on any agree/partly/disagree-like scale (support / partly /
#: oppose, agree / disagree, pro / con, positive / mixed / negative). Checked in this order:
#: "does_not_resonate" is a disagreement before it is a resonance.
_CANONICAL_STANCE: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("unclear", re.compile(r"unclear|unsure|don.?t.know|no.view|neither|not.stated", re.I)),
    (
        "does_not_resonate",
        re.compile(r"not|disagree|oppos|against|\bcon\b|negative|reject|\bno\b", re.I),
    ),
    ("partly", re.compile(r"partl|partial|mixed|some|conditional|qualified|neutral", re.I)),
    (
        "resonates",
        re.compile(r"resonat|agree|support|\bpro\b|favou?r|positive|\byes\b|for\b", re.I),
    ),
)


def canonical_stances(values: list[tuple[str, str]]) -> dict[str, str]:
    """Default-scale class -> this scale's value id, for values whose id or label says so.

    ``values`` are (id, label) pairs. A class two values claim is left out (ambiguous).
    """
    found: dict[str, list[str]] = {}
    for value_id, label in values:
        words = f"{value_id.replace('_', ' ')} {label}"
        for canonical, pattern in _CANONICAL_STANCE:
            if pattern.search(words):
                found.setdefault(canonical, []).append(value_id)
                break
    mapping = {canonical: ids[0] for canonical, ids in found.items() if len(ids) == 1}
    # Only a scale with both poles is one the openings can be read on (a 5-point sentiment
    # scale, whose "positive" and "very positive" both claim agreement, is not).
    if "resonates" not in mapping or "does_not_resonate" not in mapping:
        return {}
    return mapping


def stance_cue(
    text: str, stance_ids: list[str], mapping: dict[str, str] | None = None
) -> str | None:
    """The stance an explicit opening gives ("Partly.", "Yes, but", "Not really"), if any.

    Without ``mapping`` only scales that use coder's default stance ids get a cue; with one
    (from :func:`canonical_stances`), any scale whose values it places does.
    """
    for stance, pattern in _STANCE_CUES:
        target = stance if mapping is None else mapping.get(stance)
        if target is not None and target in stance_ids and pattern.search(text or ""):
            return target
    return None


# Words that only say how far the respondent agrees: an answer made of nothing else
# ("Yes", "Strongly resonates", "Not really", "Agree - 100%") carries a stance but no theme.
_STANCE_WORDS = frozenset(
    """yes yeah yep yup no nope nah not really absolutely definitely certainly totally
    completely entirely fully strongly very much so agree agreed disagree disagreed
    strongly partly partially somewhat slightly mostly largely in part to some extent
    resonates resonate resonated resonating does do doesn't don't it this that hypothesis
    statement one for me with i 100 percent of course indeed sure true correct right
    exactly quite maybe perhaps possibly kind sort of a bit little lot totally and or but
    too also same here definitely yes no agree completely think so would say""".split()
)
_STANCE_WORD = re.compile(r"[a-z0-9']+")


def stance_only(text: str | None) -> bool:
    """True when ``text`` says only how far the respondent agrees, and nothing codable.

    "Yes", "Strongly resonates", "No", "Not really", "Agree 100%!" — a stance, no theme.
    Hashtags are ignored. Used by the classifier (no themes), quotes (not a quote) and
    discover (not a candidate theme).
    """
    stripped = _HASHTAG.sub(" ", text or "").lower()
    found = _STANCE_WORD.findall(stripped)
    if not found or len(found) > 8:
        return False
    return all(word in _STANCE_WORDS for word in found)


#: Answers that only point at another answer ("see previous answer", "As above", "See my
#: H3 answer"): unusable on their own, so not relevant wherever they appear.
_CROSS_REFERENCE = re.compile(
    r"^\W*(?:please\s+)?(?:(?:see|refer\s+to)\s+(?:my\s+|the\s+|our\s+)?"
    r"(?:previous|above|earlier|last|prior|other|answer|comment|response|h\d+|q\d+|question)"
    r"|as\s+(?:above|before|previously|per\s+(?:my|above|previous))"
    r"|same\s+as\s+(?:above|before|previous|my|h\d+|q\d+|question)|ditto)"
    # at most three more words ("See my H3 answer", "Same as H2 really"): anything longer
    # ("As above I have no complaints") says something of its own
    r"(?:\W+[\w']+){0,3}\W*$",
    re.IGNORECASE,
)
#: "n/a - not my area", "N/A (not applicable to us)": a non-answer with a reason.
_NA_PREFIX = re.compile(r"^\W*(?:n/?a|not applicable)\b\W*(?:[-:(,–—]|$)", re.I)

#: Workshop and survey chatter that is never an answer, whatever the codebook: event
#: logistics, technical trouble, test messages, requests for materials. (Thanks and "not
#: sure" are left out: in patient feedback "Very helpful" and "Don't know" are answers.) Zero-shot
#: relevance compares each response with these and the codebook's own not-relevant
#: examples (see ``LocalClassifier._zero_shot_relevance``).
OFF_TOPIC_CHATTER: tuple[str, ...] = (
    "Testing, can you see this?",
    "Is this the right box to type in?",
    "Can we have the slides?",
    "Will the recording be shared?",
    "I joined late, which question is this?",
    "My microphone is not working.",
    "The connection keeps dropping.",
    "Can we take a short break?",
    "How do I join the mailing list?",
    "The room was too cold.",
)


def non_answer_reason(text: str | None, *, soft: bool = True) -> str | None:
    """Why ``text`` cannot be coded (blank, 'did not answer', punctuation only), or None.

    With ``soft`` (the zero-shot default) also a bare cross-reference ("see previous
    answer", "As above") and "N/A - not my area": conventions differ between codebooks (an
    NHS coder keeps "As above." as relevant), so a trained relevance model decides those.
    """
    stripped = (text or "").strip()
    if not stripped:
        return "blank"
    if all(char in string.punctuation or char.isspace() for char in stripped):
        return "punctuation only"
    if not _HASHTAG.sub("", stripped).strip(string.punctuation + " "):
        return "hashtags only"
    normalised = " ".join(stripped.lower().strip(string.punctuation + " ").split())
    if normalised in NON_ANSWERS or stripped.lower() in NON_ANSWERS:
        return quoting_answer(NON_ANSWER, stripped)
    if not soft:
        return None
    if _NA_PREFIX.match(stripped) and len(normalised.split()) <= 8:
        return quoting_answer(NON_ANSWER, stripped)
    if _CROSS_REFERENCE.match(stripped):
        return quoting_answer(CROSS_REFERENCE, stripped)
    return None


def parse_examples(examples: list[str]) -> list[str]:
    """Split example strings that hold several quoted examples into one text each."""
    parsed: list[str] = []
    for raw in examples:
        quoted = [match.strip() for match in _QUOTED.findall(raw) if len(match.strip()) > 2]
        parsed.extend(quoted if len(quoted) >= 2 else [raw.strip()])
    seen: set[str] = set()
    unique = []
    for example in parsed:
        if example and example.lower() not in seen:
            seen.add(example.lower())
            unique.append(example)
    return unique


def theme_prototypes(theme: Theme, max_examples: int = 40) -> list[str]:
    """Texts that describe a theme: its label, definition, include criteria and examples.

    The first text is always the definition (prefixed with the label when the definition
    does not already name it); zero-shot matching takes the best match over all of them.
    """
    definition = theme.definition.strip() or theme.label
    head = (
        definition if theme.label.lower() in definition.lower() else f"{theme.label}: {definition}"
    )
    texts = [head, theme.label]
    texts.extend(item for item in theme.include if item.strip())
    texts.extend(parse_examples(theme.examples)[:max_examples])
    return texts


def question_text(codebook: Codebook, question_id: str | None) -> str:
    """The question's full text (the id when the codebook does not list it)."""
    return " ".join(codebook.question_text(question_id).split())


def words(text: str) -> set[str]:
    """Lower-cased word set, for lexical overlap features."""
    return set(_WORD.findall((text or "").lower()))


STOPWORDS = frozenset(
    """a an the and or but if of to in on at for with by from as is are was were be been being
    it its this that these those i we you he she they them our your their my me us not no
    should would could can will do does did have has had so than then there here what which
    who whom about into over under more most very much many any all some such only also just""".split()
)


def content_words(text: str) -> set[str]:
    """Words of ``text`` without stopwords."""
    return {word for word in words(text) if word not in STOPWORDS and len(word) > 2}
