"""Number types shared by spec models, defined once so a seed means the same range everywhere."""

from typing import Annotated

from pydantic import Field

# Seeds feed numpy's default_rng, which raises on a negative one at run time, long after the
# recipe validated; 32 bits is a range every seeding API takes (numpy's legacy RandomState is the
# narrowest) and more seeds than any experiment runs.
SEED_LIMIT = 2**32
Seed = Annotated[int, Field(ge=0, lt=SEED_LIMIT)]
