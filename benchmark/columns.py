"""Column names of the pool and curated tables that more than one module reads or writes.

An op declares what it reads and writes with these names, ``validate`` checks a recipe's column
flow with them, and the trainer reads the curated table by them: one place for each name.
"""

from __future__ import annotations

# Every pool has these (``pools.REQUIRED_COLUMNS``).
UID = "uid"
CAPTION = "caption"
IMAGE = "image"  # "<shard>#<member>" relative to the run store root
WIDTH = "width"
HEIGHT = "height"
SOURCE = "source"
# Photo pools (COCO, Flickr, CC3M, byod) add: rows sharing it show one picture.
IMAGE_GROUP = "image_group"

# Scores and annotations steps add.
LANG = "lang"
CLIP_SCORE = "clip_score"
KEYWORDS = "keywords"
DETECTIONS = "detections"
EMBEDDING = "embedding"
CLUSTER = "cluster"

# Caption alternatives the trainer draws from.
REWRITES = "caption_rewrites"  # LaCLIP: each epoch draws the original or one rewrite
NEGATIVES = "negative_captions"  # NegCLIP: each epoch draws one hard negative per sample

# Rows a generate step adds, and what the edit changed.
PARENT_UID = "parent_uid"
PARENT_IMAGE = "parent_image"
PARENT_CAPTION = "parent_caption"
GENERATOR = "generator"
REMOVED = "removed"
ADDED = "added"
EDIT_BOX = "edit_box"
