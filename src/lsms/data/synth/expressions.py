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
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from lsms.data.synth.phantom import lobe_of

ATTRIBUTES = ("type", "location", "diameter", "shape", "boundary", "enhancement")
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


def differs(attribute: str, a: LesionFacts, b: LesionFacts) -> bool:
    """Whether ``attribute`` tells ``a`` and ``b`` apart visibly."""
    if attribute == "diameter":
        return max(a.diameter, b.diameter) >= SIZE_RATIO * min(a.diameter, b.diameter)
    field = {"type": "kind", "location": "segment", "enhancement": "ring"}.get(attribute, attribute)
    return getattr(a, field) != getattr(b, field)


def matching(facts: list[LesionFacts], index: int, attributes: tuple[str, ...]) -> list[int]:
    """Indices of the lesions (``index`` included) that ``attributes`` cannot tell from lesion ``index``."""
    return [
        j for j, other in enumerate(facts) if not any(differs(a, facts[index], other) for a in attributes)
    ]


def relation_holds(facts: list[LesionFacts], index: int, candidates: list[int], relation: str) -> bool:
    """Whether ``relation`` singles out ``index`` among ``candidates`` with a visible margin."""
    key = RELATIONS[relation][2]
    others = [facts[j] for j in candidates if j != index]
    target = facts[index]
    if relation in ("larger", "smaller"):
        return all(differs("diameter", target, o) and key(target) > key(o) for o in others)
    return all(key(target) - key(o) >= POSITION_GAP_MM for o in others)


def identifies(
    facts: list[LesionFacts], index: int, attributes: tuple[str, ...], relation: str | None = None
) -> bool:
    """Whether the expression (attributes + optional relation) refers to lesion ``index`` only."""
    candidates = matching(facts, index, attributes)
    if relation is None:
        return candidates == [index]
    return len(candidates) > 1 and relation_holds(facts, index, candidates, relation)


def find_relation(facts: list[LesionFacts], index: int, attributes: tuple[str, ...]) -> str | None:
    """The first relation (size first, then position) that makes the expression unique, or None."""
    if identifies(facts, index, attributes):
        return None
    for relation in RELATIONS:
        if identifies(facts, index, attributes, relation):
            return relation
    raise LookupError("no relation singles out the lesion")


def render_text(
    fact: LesionFacts, attributes: tuple[str, ...], relation: str | None = None, n_candidates: int = 2
) -> str:
    """The sentence for ``attributes`` (in canonical order) and an optional relation."""
    noun = TYPE_NOUNS[fact.kind] if "type" in attributes else "lesion"
    if relation is None:
        head = f"{'An' if noun[0] in 'aeiou' else 'A'} {noun}"
    else:
        head = f"The {RELATIONS[relation][0 if n_candidates == 2 else 1]} {noun}"
    if "location" in attributes:
        lobe = f"{lobe_of(fact.segment)} lobe"
        head += f" in the {fact.segment} segment of the {lobe} of the liver"
    items = []
    if "diameter" in attributes:
        items.append(f"a diameter of {fact.diameter:.1f}mm")
    if "shape" in attributes:
        items.append(f"{fact.shape} shape")
    if "boundary" in attributes:
        items.append(f"{fact.boundary} boundary")
    if "enhancement" in attributes:
        items.append("ring enhancement" if fact.ring else "no ring enhancement")
    if not items:
        return head + "."
    comma = "," if "location" in attributes else ""  # as in RefHL-Seg: "... of the liver, with ..."
    if len(items) == 1:
        item = items[0]
        if not item.startswith(("a ", "no ")):
            item = f"{'an' if item[0] in 'aeiou' else 'a'} {item}"
        return f"{head}{comma} with {item}."
    if len(items) == 2:
        return f"{head}{comma} with {items[0]} and {items[1]}."
    return f"{head}{comma} with {', '.join(items[:-1])}, and {items[-1]}."


@dataclass(frozen=True)
class Expression:
    """A verified expression: its text, the attributes it mentions and the relation it adds."""

    text: str
    attributes: tuple[str, ...]
    relation: str | None


def make_expression(
    facts: list[LesionFacts], index: int, n_attributes: int, rng: np.random.Generator
) -> Expression:
    """A unique expression for lesion ``index`` mentioning ``n_attributes`` attributes.

    Subsets of that size are tried in random order, preferring one that is unique by itself; else
    the first for which a relation works; else the size grows by one. Raises LookupError when even
    all attributes plus a relation cannot single the lesion out.
    """
    for size in range(n_attributes, len(ATTRIBUTES) + 1):
        subsets = list(itertools.combinations(ATTRIBUTES, size))
        order = rng.permutation(len(subsets))
        for needs_relation in (False, True):
            for k in order:
                attributes = subsets[k]
                if not needs_relation and identifies(facts, index, attributes):
                    return Expression(render_text(facts[index], attributes), attributes, None)
                if needs_relation:
                    try:
                        relation = find_relation(facts, index, attributes)
                    except LookupError:
                        continue
                    n = len(matching(facts, index, attributes))
                    return Expression(
                        render_text(facts[index], attributes, relation, n), attributes, relation
                    )
    raise LookupError(f"lesion {index} cannot be referred to uniquely")
