"""Patient-specific HTO cutting guides: design (manifold3d booleans on signed-distance level
sets), measured checks, rigid placement on a bone, the virtual CT-vs-X-ray trial, and
print-ready STL/3MF export. Framework-free (no Django).

CLI: ``python -m evaluation.guide --tibia TIBIA --plan PLAN.json --out DIR``.
"""

from .design import GuideDesign, GuideParams, design_guide, print_tibia
from .errors import GuideError

__all__ = ["GuideDesign", "GuideError", "GuideParams", "design_guide", "print_tibia"]
