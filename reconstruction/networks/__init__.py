"""Learned reconstruction networks: the CT teacher and the biplanar X-ray student.

Geometry enters the student only through the 3x4 projection matrices of the views
(pixel-aligned features plus a projective positional encoding), never through a fixed
canonical volume, so other view angles and magnifications need no retraining.
"""

CLASS_NAMES: tuple[str, ...] = ("background", "femur", "tibia", "fibula", "patella")
NUM_CLASSES = len(CLASS_NAMES)
