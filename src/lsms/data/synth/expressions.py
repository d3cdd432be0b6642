"""Referring expressions in RefHL-Seg's style, and the check that each one is unambiguous.

Full expression (all six attributes)::

    A vascular tumor in the VI segment of the right lobe of the liver, with a diameter of 27.5mm,
    irregular shape, clear boundary, and no ring enhancement.

Partial expressions keep about half (3) or a quarter (2) of the attributes. An expression refers
to lesion ``i`` of a slice when ``i`` is the only lesion of the slice that matches every attribute
it mentions; when several match, a relation among them is added ("The larger ...", "The most
anterior ..."). Attributes are compared as a reader of a 128 px image could: diameters only differ
when one is at least ``SIZE_RATIO`` times the other, positions only when the centres are at least
``POSITION_GAP_MM`` apart. "Right"/"left" are the patient's sides (radiological convention: the
patient's right is the image's left, see ``phantom``).

The uniqueness machinery (``matching``, ``identifies``, ``find_relation``, ``make_expression``) takes
a ``Vocabulary``: how two facts are compared and how a sentence is phrased. The synthetic
benchmark's is ``SYNTH`` (the default); ``lsms.data.describe`` brings its own for measured lesions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lsms.data.synth.phantom import lobe_of

ATTRIBUTES = ("type", "location", "diameter", "shape", "boundary", "enhancement")
N_HALF, N_QUARTER = 3, 2  # of the six attributes
# Attribute counts of the full, half and quarter expressions.
EXPRESSION_SIZES = (len(ATTRIBUTES), N_HALF, N_QUARTER)
SIZE_RATIO = 1.3
POSITION_GAP_MM = 15.0
TYPE_NOUNS = {
    "hemangioma": "vascular tumor",
    "cyst": "cyst",
    "hcc": "hepatocellular carcinoma",
    "fnh": "focal nodular hyperplasia",
    "metastasis": "metastatic tumor",
}
# Relation -> (comparative, superlative, key whose maximum it selects); x grows towards the
# patient's left, y towards posterior.
RELATIONS = {
    "larger": ("larger", "largest", lambda f: f.diameter),
    "smaller": ("smaller", "smallest", lambda f: -f.diameter),
    "anterior": ("more anterior", "most anterior", lambda f: -f.cy),
    "posterior": ("more posterior", "most posterior", lambda f: f.cy),
    "right": ("more right-sided", "most right-sided", lambda f: -f.cx),
    "left": ("more left-sided", "most left-sided", lambda f: f.cx),
}


@dataclass(frozen=True)
class LesionFacts:
    """What an expression can say about one lesion on one slice (mm, phantom frame)."""

    kind: str
    segment: str
    diameter: float
    shape: str
    boundary: str
    ring: bool
    cx: float
    cy: float


@dataclass(frozen=True)
class Vocabulary:
    """How facts are told apart and phrased. ``differs(attribute, a, b)``: whether ``attribute`` tells
    two facts apart visibly; ``render(fact, attributes, relation, n_candidates)``: the sentence. Facts
    need ``diameter`` (mm), ``cx`` (mm, towards the patient's left) and ``cy`` (mm, towards posterior)
    for the relations."""

    differs: Callable[[str, Any, Any], bool]
    render: Callable[[Any, tuple[str, ...], str | None, int], str]


def differs(attribute: str, a: LesionFacts, b: LesionFacts) -> bool:
    """Whether ``attribute`` tells ``a`` and ``b`` apart visibly."""
    if attribute == "diameter":
        return max(a.diameter, b.diameter) >= SIZE_RATIO * min(a.diameter, b.diameter)
    field = {"type": "kind", "location": "segment", "enhancement": "ring"}.get(attribute, attribute)
    return getattr(a, field) != getattr(b, field)


def matching(
    facts: list[Any], index: int, attributes: tuple[str, ...], vocabulary: Vocabulary | None = None
) -> list[int]:
    """Indices of the lesions (``index`` included) that ``attributes`` cannot tell from lesion ``index``."""
    tells = (vocabulary or SYNTH).differs
    return [j for j, other in enumerate(facts) if not any(tells(a, facts[index], other) for a in attributes)]


def relation_holds(
    facts: list[Any], index: int, candidates: list[int], relation: str, vocabulary: Vocabulary | None = None
) -> bool:
    """Whether ``relation`` singles out ``index`` among ``candidates`` with a visible margin."""
    key = RELATIONS[relation][2]
    others = [facts[j] for j in candidates if j != index]
    target = facts[index]
    if relation in ("larger", "smaller"):
        tells = (vocabulary or SYNTH).differs
        return all(tells("diameter", target, o) and key(target) > key(o) for o in others)
    return all(key(target) - key(o) >= POSITION_GAP_MM for o in others)


def identifies(
    facts: list[Any],
    index: int,
    attributes: tuple[str, ...],
    relation: str | None = None,
    vocabulary: Vocabulary | None = None,
) -> bool:
    """Whether the expression (attributes + optional relation) refers to lesion ``index`` only."""
    candidates = matching(facts, index, attributes, vocabulary)
    if relation is None:
        return candidates == [index]
    return len(candidates) > 1 and relation_holds(facts, index, candidates, relation, vocabulary)


def find_relation(
    facts: list[Any], index: int, attributes: tuple[str, ...], vocabulary: Vocabulary | None = None
) -> str | None:
    """The first relation (size first, then position) that makes the expression unique, or None."""
    if identifies(facts, index, attributes, vocabulary=vocabulary):
        return None
    for relation in RELATIONS:
        if identifies(facts, index, attributes, relation, vocabulary):
            return relation
    raise LookupError("no relation singles out the lesion")


def article(word: str) -> str:
    """``"An"`` before a vowel, else ``"A"``."""
    return "An" if word[0] in "aeiou" else "A"


def segment_phrase(segment: str, organ: str = "liver") -> str:
    """``"in the VI segment of the right lobe of the liver"`` (Couinaud segment as a Roman numeral)."""
    return f"in the {segment} segment of the {lobe_of(segment)} lobe of the {organ}"


def join_clauses(head: str, items: list[str], comma: bool) -> str:
    """``head`` followed by "with" and ``items`` as one sentence ("with a, b, and c."); ``comma``
    puts a comma after the head (as RefHL-Seg does after a location: "... of the liver, with ...")."""
    if not items:
        return head + "."
    sep = "," if comma else ""
    if len(items) == 1:
        item = items[0]
        if not item.startswith(("a ", "an ", "no ")):
            item = f"{article(item).lower()} {item}"
        return f"{head}{sep} with {item}."
    if len(items) == 2:
        return f"{head}{sep} with {items[0]} and {items[1]}."
    return f"{head}{sep} with {', '.join(items[:-1])}, and {items[-1]}."


def sentence_head(noun: str, relation: str | None, n_candidates: int) -> str:
    """``"A cyst"``, or with a relation ``"The larger cyst"`` (2 candidates) / ``"The largest cyst"``."""
    if relation is None:
        return f"{article(noun)} {noun}"
    return f"The {RELATIONS[relation][0 if n_candidates == 2 else 1]} {noun}"


def render_text(
    fact: LesionFacts, attributes: tuple[str, ...], relation: str | None = None, n_candidates: int = 2
) -> str:
    """The sentence for ``attributes`` (in canonical order) and an optional relation."""
    head = sentence_head(TYPE_NOUNS[fact.kind] if "type" in attributes else "lesion", relation, n_candidates)
    if "location" in attributes:
        head += " " + segment_phrase(fact.segment)
    items = []
    if "diameter" in attributes:
        items.append(f"a diameter of {fact.diameter:.1f}mm")
    if "shape" in attributes:
        items.append(f"{fact.shape} shape")
    if "boundary" in attributes:
        items.append(f"{fact.boundary} boundary")
    if "enhancement" in attributes:
        items.append("ring enhancement" if fact.ring else "no ring enhancement")
    return join_clauses(head, items, comma="location" in attributes)


# What render_text writes for each attribute but the type, to read back which ones a sentence mentions.
_ATTRIBUTE_WORDS = {
    "location": " segment of the ",
    "diameter": "a diameter of ",
    "shape": " shape",
    "boundary": " boundary",
    "enhancement": "ring enhancement",
}


def mentioned_attributes(text: str) -> tuple[str, ...]:
    """The attributes (in :data:`ATTRIBUTES` order) that a sentence of :func:`render_text` mentions: its
    inverse, for data sets whose files record only the sentences."""
    found = {attribute for attribute, words in _ATTRIBUTE_WORDS.items() if words in text}
    if any(noun in text for noun in TYPE_NOUNS.values()):
        found.add("type")
    return tuple(attribute for attribute in ATTRIBUTES if attribute in found)


def mentioned_relation(text: str) -> str | None:
    """The relation (a key of :data:`RELATIONS`) that a sentence of :func:`render_text` opens with, or None."""
    for relation, (comparative, superlative, _) in RELATIONS.items():
        if text.startswith((f"The {comparative} ", f"The {superlative} ")):
            return relation
    return None


def refers_to(facts: list[Any], index: int, text: str) -> bool:
    """Whether a sentence of :func:`render_text` refers to lesion ``index`` of ``facts`` only."""
    return identifies(facts, index, mentioned_attributes(text), mentioned_relation(text))


SYNTH = Vocabulary(differs, render_text)


@dataclass(frozen=True)
class Expression:
    """A verified expression: its text, the attributes it mentions and the relation it adds."""

    text: str
    attributes: tuple[str, ...]
    relation: str | None


def make_expression(
    facts: list[Any],
    index: int,
    n_attributes: int,
    rng: np.random.Generator,
    vocabulary: Vocabulary | None = None,
    pool: tuple[str, ...] = ATTRIBUTES,
) -> Expression:
    """A unique expression for lesion ``index`` mentioning ``n_attributes`` of the attributes in ``pool``.

    Subsets of that size are tried in random order, preferring one that is unique by itself; else
    the first for which a relation works; else the size grows by one. Raises LookupError when even
    all attributes plus a relation cannot single the lesion out.
    """
    vocabulary = vocabulary or SYNTH
    for size in range(n_attributes, len(pool) + 1):
        subsets = list(itertools.combinations(pool, size))
        order = rng.permutation(len(subsets))
        for needs_relation in (False, True):
            for k in order:
                attributes = subsets[k]
                if not needs_relation and identifies(facts, index, attributes, vocabulary=vocabulary):
                    return Expression(vocabulary.render(facts[index], attributes, None, 2), attributes, None)
                if needs_relation:
                    try:
                        relation = find_relation(facts, index, attributes, vocabulary)
                    except LookupError:
                        continue
                    n = len(matching(facts, index, attributes, vocabulary))
                    return Expression(
                        vocabulary.render(facts[index], attributes, relation, n), attributes, relation
                    )
    raise LookupError(f"lesion {index} cannot be referred to uniquely")


def sample_expression(facts: list[Any] | tuple[Any, ...], index: int, rng: np.random.Generator) -> Expression:
    """A fresh unique expression for lesion ``index``: full, half or quarter size (uniformly, as the
    generator writes one of each per row), its attributes drawn by ``make_expression``."""
    n_attributes = EXPRESSION_SIZES[int(rng.integers(len(EXPRESSION_SIZES)))]
    return make_expression(list(facts), index, n_attributes, rng)
