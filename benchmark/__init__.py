"""smallcomp: a declarative benchmark for CLIP training-data curation at small scale."""

__version__ = "0.1.0"
