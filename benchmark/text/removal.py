"""The caption of a counterfactual image: what the caption says once one object is taken out,
or swapped for an object of another category.

Counterfactual augmentation removes a detected object from an image (or paints another in its
place); the caption must stop naming it, or the pair teaches the opposite of the edit. A swap is
said by ``replace_object`` ("a dog on a couch" → "a cat on a couch"); a removal two ways:

- ``remove_object``: the words naming the object go, with whatever only made sense with them
  (its determiner and modifiers, the "and" or comma that joined it to a list, the relation or
  preposition that tied it to the rest, the verb it was the object of). What is left is a caption
  that is still true of the edited image. When no rule gets there with confidence it returns
  None: a wrong caption on a training pair is worse than none, and the caller has a fallback.
- ``absence_caption``: that fallback, which keeps the caption and negates the object ("No dog is
  sleeping on the couch").

`shapes` captions are parsed exactly (world.describe's templates are a closed grammar:
:mod:`benchmark.text.shapes_removal`); other captions are chunked by rule into noun phrases,
prepositions, verbs and conjunctions (:mod:`benchmark.text.chunker`) and edited by the rules of
:mod:`benchmark.text.english_removal`. ``absence_caption`` is :mod:`benchmark.text.absence`'s.
"""

from __future__ import annotations

from benchmark.text.english_removal import remove_english, replace_english
from benchmark.text.shapes_removal import remove_shape, replace_shape
from benchmark.text.vocabulary import VocabularyName


def remove_object(caption: str, category: str, vocabulary: VocabularyName) -> str | None:
    """``caption`` without the phrase naming ``category`` (any name the vocabulary knows for
    it, plural or multiword), grammar repaired; None when no rule can do it safely: the object
    is named more than once or as several ("two dogs", "a herd of sheep"), only inside another
    word ("skier" for skis), as a modifier ("dog bed"), or is all the caption says, or the
    rest of the sentence still depends on it (its verb, a pronoun). Rules, in order:

    - an item of a list of noun phrases goes with its "and" or comma ("a cat and a dog on a
      couch" → "a cat on a couch"); a verb or "there are" that agreed with two items agrees
      with the one left;
    - the object of a preposition goes with it ("a cat next to a dog" → "a cat");
    - the object of a verb goes with the verb and its own attachments, keeping a phrase that
      says where the scene is ("a woman holding a knife in the kitchen" → "a woman in the
      kitchen"), because a verb without its object ("a woman holding") says nothing;
    - the subject goes with the relation or placing verb that tied it to the next noun phrase,
      which becomes the subject ("a red circle to the left of a blue square" → "a blue square",
      "a dog sitting on a couch" → "a couch"): that is what the edited image shows.

    The first letter's case and the final punctuation are kept; articles are made to agree."""
    if not caption or not caption.strip():
        return None
    if vocabulary == "shapes":
        return remove_shape(caption, category)
    return remove_english(caption, category)


def replace_object(caption: str, category: str, new: str, vocabulary: VocabularyName) -> str | None:
    """``caption`` with the one phrase naming ``category`` made to name ``new`` instead ("A
    dog sleeping on a couch" → "A cat sleeping on a couch", "a red circle above a blue square"
    → "a red star above a blue square"): the edit painted an object of ``new`` where the old
    one was, and everything else the caption says (its colour, place, relations) is still true.
    The article is made to agree. None when the swap is not one word's: the object is named
    twice, as several, as a modifier or only inside another word, ``new`` is already named (the
    caption would count wrong), or a pronoun that pointed at it no longer fits."""
    if not caption or not caption.strip() or category == new:
        return None
    if vocabulary == "shapes":
        return replace_shape(caption, category, new)
    return replace_english(caption, category, new)
