"""Pure text functions the curation ops build on: vocabularies, WordNet, paraphrases, swaps.

Nothing here sees a table or a step context, so each piece can be tested (and reused by the
trainer or the evaluators) on plain strings.
"""
