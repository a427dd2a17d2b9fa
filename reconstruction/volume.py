"""The canonical 3D image type shared by every reader, writer and algorithm.

Coordinates: `affine` maps voxel indices (i, j, k) of `array[i, j, k]` to
patient coordinates in millimetres, LPS (DICOM convention) unless stated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Volume:
    array: np.ndarray  # 3D, indexed [i, j, k]
    affine: np.ndarray  # 4x4, voxel index -> patient mm (LPS)
    modality: str = "CT"  # "CT", "MR", "LABELS", "PSEUDO_CT"
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume needs a 3D array, got shape {self.array.shape}")
        if self.affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {self.affine.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(int(n) for n in self.array.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along i, j, k."""
        return tuple(float(np.linalg.norm(self.affine[:3, axis])) for axis in range(3))  # type: ignore[return-value]

    @property
    def direction(self) -> np.ndarray:
        """3x3 direction cosines (columns = unit vectors of i, j, k in patient space)."""
        return self.affine[:3, :3] / np.asarray(self.spacing)[None, :]

    @property
    def origin(self) -> np.ndarray:
        return self.affine[:3, 3].copy()

    def index_to_patient(self, ijk: np.ndarray) -> np.ndarray:
        ijk = np.asarray(ijk, dtype=float)
        return ijk @ self.affine[:3, :3].T + self.affine[:3, 3]

    def patient_to_index(self, xyz: np.ndarray) -> np.ndarray:
        inverse = np.linalg.inv(self.affine)
        xyz = np.asarray(xyz, dtype=float)
        return xyz @ inverse[:3, :3].T + inverse[:3, 3]

    @property
    def value_range(self) -> tuple[float, float]:
        return float(np.min(self.array)), float(np.max(self.array))
