"""Expressions for measured lesions, built and verified by the synthetic generator's machinery.

``VOCABULARY`` tells ``lsms.data.synth.expressions`` how measured ``Facts`` are compared and phrased;
choosing attribute subsets, adding relations ("The larger ...", "The more anterior ...") and the
uniqueness check are that module's. Example (all attributes)::

    A hypodense tumor in the upper right anterior part of the liver, with a diameter of 18.2mm,
    round shape, and well-defined margin.

With a segment map the location is the Couinaud segment instead ("in the VI segment of the right
lobe of the liver"). Tolerances: diameters differ when one is >= ``SIZE_RATIO`` (1.3) times the
other; side/depth/level words only tell lesions apart when their centres are also
``POSITION_GAP_MM`` (15 mm) apart along that axis; a word that is None (not measured, or in a band
between classes) never tells lesions apart and is never said.
"""

from __future__ import annotations

from lsms.data.describe.measure import Facts
from lsms.data.synth.expressions import (
    POSITION_GAP_MM,
    RELATIONS,
    Vocabulary,
    join_clauses,
    relation_holds,
    segment_phrase,
    sentence_head,
)
from lsms.data.synth.expressions import differs as synth_differs

# Canonical order of the attributes in a sentence; "type" is the fact's ``kind``.
ATTRIBUTES = ("type", "density", "segment", "level", "side", "depth", "diameter", "shape", "margin")
_FIELDS = {"type": "kind"}
_AXES = {"side": "cx", "depth": "cy", "level": "cz"}


def _value(fact: Facts, attribute: str) -> object:
    return getattr(fact, _FIELDS.get(attribute, attribute))


def pool(fact: Facts) -> tuple[str, ...]:
    """The attributes that can be said about ``fact``: those with a value; with a segment the
    Couinaud segment stands for the location (side, depth and level are left out)."""
    names = [a for a in ATTRIBUTES if _value(fact, a) is not None]
    if fact.segment is not None:
        names = [a for a in names if a not in _AXES]
    return tuple(names)


def differs(attribute: str, a: Facts, b: Facts) -> bool:
    """Whether ``attribute`` tells ``a`` and ``b`` apart visibly (see the module docstring)."""
    if attribute == "diameter":  # the synthetic benchmark's rule (SIZE_RATIO)
        return synth_differs("diameter", a, b)
    first, second = _value(a, attribute), _value(b, attribute)
    if first is None or second is None or first == second:
        return False
    if attribute in _AXES:
        return abs(getattr(a, _AXES[attribute]) - getattr(b, _AXES[attribute])) >= POSITION_GAP_MM
    return True


def render(
    fact: Facts, attributes: tuple[str, ...], relation: str | None = None, n_candidates: int = 2
) -> str:
    """The sentence for ``attributes`` (in canonical order) and an optional relation."""
    noun = (fact.kind if "type" in attributes else None) or "lesion"
    if "density" in attributes:
        noun = f"{fact.density} {noun}"
    head = sentence_head(noun, relation, n_candidates)
    words = [_value(fact, a) for a in ("level", "side", "depth") if a in attributes]
    located = "segment" in attributes or bool(words)
    if "segment" in attributes:
        head += " " + segment_phrase(fact.segment, fact.organ)
    elif words:
        head += f" in the {' '.join(words)} part of the {fact.organ}"
    items = []
    if "diameter" in attributes:
        items.append(f"a diameter of {fact.diameter:.1f}mm")
    if "shape" in attributes:
        items.append(f"{fact.shape} shape")
    if "margin" in attributes:
        items.append(f"{fact.margin} margin")
    return join_clauses(head, items, comma=located)


VOCABULARY = Vocabulary(differs, render)


def relations_on_slice(facts: list[Facts], index: int) -> tuple[str, ...]:
    """Every relation that holds between lesion ``index`` and each other lesion of the slice, with the
    expressions' margins (1.3 x in diameter, 15 mm in position): ``("larger than l2", ...)``."""
    found = []
    for j, other in enumerate(facts):
        if j != index:
            found += [
                f"{comparative} than l{other.lesion}"
                for name, (comparative, _, _) in RELATIONS.items()
                if relation_holds(facts, index, [index, j], name, VOCABULARY)
            ]
    return tuple(found)
