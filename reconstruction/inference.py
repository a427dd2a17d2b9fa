"""Coarse-to-fine evaluation of a multi-class occupancy function on a grid.

MISE-like (Occupancy Networks): the class function (points -> arg-max class) is evaluated on
a coarse lattice (default 4 mm); every cell whose 8 corners do not all share one class (it
straddles a surface) is refined by halving the spacing, and only the new lattice nodes inside
such cells are evaluated; cells with uniform corners inherit their class. Repeated down to the
finest spacing (default 0.5 mm). One evaluation gives all classes (arg-max), so the cost grows
with the surface area, not the volume, and is shared by the four bones.

Risk, stated: a structure thinner than the coarse spacing that falls between coarse nodes is
missed. The refined region is therefore dilated by `dilation` cells in the first
`dilated_levels` refinements (at 4 -> 2 mm; finer levels follow the surface found there).

In the refinements from a spacing of `span_from_mm` down (`span_levels` of them; none by
default) a new node is evaluated only where the old nodes that span it (the two ends of its edge, the four corners of its face, the eight of its cell) are
not all one class; elsewhere it takes that class without an evaluation. Inside a straddling
cell most new nodes sit on edges and faces that the surface does not cross. The two results
differ only where a new node's class differs from the one class of all its spanning nodes:
a structure or gap thinner than the old spacing that lies between old nodes without
reaching any of them, which at 1 -> 0.5 mm is below the finest spacing's own resolution.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from reconstruction.volume import Volume

ClassFunction = Callable[[np.ndarray], np.ndarray]  # (N, 3) mm -> (N,) int class


@dataclass(frozen=True)
class RefineSettings:
    coarse_mm: float = 4.0
    levels: int = 3  # halvings: 4 -> 2 -> 1 -> 0.5 mm
    dilation: int = 1  # cells added around the refined region ...
    dilated_levels: int = 1  # ... in this many of the first (coarsest) refinements
    span_from_mm: float | None = None  # refinements from this spacing down: mixed spans
    chunk: int = 65536

    @property
    def fine_mm(self) -> float:
        return self.coarse_mm / 2**self.levels

    @property
    def span_levels(self) -> int:
        """How many of the last refinements evaluate only nodes of mixed spans: those whose
        old spacing is at most `span_from_mm`."""
        if self.span_from_mm is None:
            return 0
        return sum(self.coarse_mm / 2**k <= self.span_from_mm + 1e-9 for k in range(self.levels))


@dataclass
class RefineResult:
    labels: Volume  # uint8 classes on the finest lattice (affine: node index -> mm)
    evaluations: int  # lattice nodes passed to the class function
    evaluations_per_level: list[int] = field(default_factory=list)
    # set by callers whose class function skips some nodes (e.g. outside the X-ray views)
    network_evaluations: int | None = None

    def fraction_of_dense(self, dense_nodes: int = 256**3) -> float:
        used = self.evaluations if self.network_evaluations is None else self.network_evaluations
        return used / dense_nodes


def lattice_shape(lo: np.ndarray, hi: np.ndarray, settings: RefineSettings) -> tuple[int, ...]:
    """Coarse node counts covering [lo, hi] (the box is grown to a whole number of cells)."""
    cells = np.ceil((np.asarray(hi) - np.asarray(lo)) / settings.coarse_mm - 1e-9).astype(int)
    return tuple(int(c) + 1 for c in np.maximum(cells, 1))


def coarse_to_fine(
    classify: ClassFunction,
    lo: np.ndarray,
    hi: np.ndarray,
    settings: RefineSettings = RefineSettings(),
) -> RefineResult:
    """Classes on the finest lattice over the box [lo, hi] (mm), evaluating few nodes."""
    lo = np.asarray(lo, dtype=float)
    shape = np.array(lattice_shape(lo, hi, settings))
    spacing = settings.coarse_mm
    labels = _evaluate(classify, _all_nodes(shape), lo, spacing, settings.chunk).reshape(shape)
    counts = [int(labels.size)]
    first_span_level = settings.levels - settings.span_levels
    for level in range(settings.levels):
        fine_shape = (shape - 1) * 2 + 1
        if level >= first_span_level:
            nodes = _new_nodes_of_mixed_spans(labels)
        else:
            active = _straddling_cells(labels)
            if level < settings.dilated_levels and settings.dilation > 0:
                active = ndimage.binary_dilation(active, iterations=settings.dilation)
            nodes = _new_nodes_in_cells(active, fine_shape)
        labels, shape = _inherit(labels), fine_shape
        spacing /= 2.0
        if len(nodes):
            labels[tuple(nodes.T)] = _evaluate(classify, nodes, lo, spacing, settings.chunk)
        counts.append(int(len(nodes)))
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = lo
    return RefineResult(Volume(labels.astype(np.uint8), affine, "LABELS"), sum(counts), counts)


def dense_labels(
    classify: ClassFunction, lo: np.ndarray, hi: np.ndarray, settings: RefineSettings
) -> Volume:
    """Reference: every node of the finest lattice evaluated (for tests and comparisons)."""
    shape = (np.array(lattice_shape(lo, hi, settings)) - 1) * 2**settings.levels + 1
    spacing = settings.fine_mm
    values = _evaluate(classify, _all_nodes(shape), np.asarray(lo, float), spacing, settings.chunk)
    affine = np.diag([spacing, spacing, spacing, 1.0])
    affine[:3, 3] = lo
    return Volume(values.reshape(shape).astype(np.uint8), affine, "LABELS")


def _all_nodes(shape: np.ndarray) -> np.ndarray:
    return np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1).reshape(-1, 3)


def _evaluate(
    classify: ClassFunction, nodes: np.ndarray, lo: np.ndarray, spacing: float, chunk: int
) -> np.ndarray:
    out = np.empty(len(nodes), dtype=np.uint8)
    for start in range(0, len(nodes), chunk):
        points = lo + nodes[start : start + chunk] * spacing
        out[start : start + chunk] = np.asarray(classify(points)).reshape(-1)
    return out


def _straddling_cells(labels: np.ndarray) -> np.ndarray:
    """Cells (one fewer per axis than nodes) whose 8 corner classes are not all equal."""
    first = labels[:-1, :-1, :-1]
    mixed = np.zeros(first.shape, dtype=bool)
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                corner = labels[di : labels.shape[0] - 1 + di, dj : labels.shape[1] - 1 + dj][
                    :, :, dk : labels.shape[2] - 1 + dk
                ]
                mixed |= corner != first
    return mixed


def _inherit(labels: np.ndarray) -> np.ndarray:
    """Finer lattice: old nodes keep their class, new nodes take the class of the old node at
    the lower corner of their cell (exact in uniform cells; overwritten in refined ones)."""
    n = labels.shape
    fine = np.empty(tuple(2 * size - 1 for size in n), dtype=labels.dtype)
    for di in (0, 1):  # fine[i, j, k] = labels[i // 2, j // 2, k // 2], one parity at a time
        for dj in (0, 1):
            for dk in (0, 1):
                fine[di::2, dj::2, dk::2] = labels[: n[0] - di, : n[1] - dj, : n[2] - dk]
    return fine


def _new_nodes_in_cells(active: np.ndarray, fine_shape: np.ndarray) -> np.ndarray:
    """Fine-lattice nodes inside active coarse cells that are not old nodes (each once)."""
    marked = np.zeros(tuple(fine_shape), dtype=bool)
    cells = np.argwhere(active)
    for offset in np.argwhere(np.ones((3, 3, 3), dtype=bool)):
        if not offset.any() or not (offset % 2).any():
            continue  # corners (all even offsets) are old nodes, already known
        index = 2 * cells + offset
        marked[tuple(index.T)] = True
    return np.argwhere(marked)


def _new_nodes_of_mixed_spans(labels: np.ndarray) -> np.ndarray:
    """Fine-lattice nodes (indices of the next, halved lattice) whose spanning old nodes
    differ: for a new node at 2 i + o, o in {0, 1}^3 not all zero, the old nodes i + d with
    0 <= d <= o (an edge's 2 ends, a face's 4 corners or a cell's 8)."""
    n = labels.shape
    found = []
    for offset in itertools.product((0, 1), repeat=3):
        if not any(offset):
            continue
        extent = tuple(size - o for size, o in zip(n, offset, strict=True))
        base = labels[: extent[0], : extent[1], : extent[2]]
        mixed = np.zeros(extent, dtype=bool)
        for step in itertools.product(*(range(o + 1) for o in offset)):
            if any(step):
                corner = labels[tuple(slice(d, d + e) for d, e in zip(step, extent, strict=True))]
                mixed |= corner != base
        found.append(2 * np.argwhere(mixed) + np.asarray(offset))
    return np.concatenate(found)
