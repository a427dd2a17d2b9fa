"""The X-ray student: two views + their projection matrices -> class logits at 3D points.

Each query point is projected into both views with the true cone-beam matrices (P' of the
normalised views); multi-scale features of a shared 2D U-Net are sampled there (pixel
aligned), together with a Fourier encoding of the projective coordinates (normalised u, v
and the depth along that view's beam relative to the isocentre). A per-view MLP embeds each
view, the two embeddings are concatenated in view order and decoded to 5 classes. Nothing
depends on a fixed volume or on the angle itself, so any separation and magnification that
the matrices describe can be queried.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from reconstruction.networks.encoders import UNet
from reconstruction.networks.geometry import (
    DEFAULT_ISO_PIXEL_MM,
    DEFAULT_VIEW_SIZE,
    pixels_to_grid,
    project,
    sample_pixel_features,
)
from reconstruction.networks.point_decoder import POINT_FEATURE_DIM, PointDecoder
from reconstruction.networks.positional import FourierEncoding

DEPTH_SCALE_MM = 100.0
IMAGE_SCALE = 0.5  # line integrals of a knee are ~0-4: bring them near unit range


@dataclass(frozen=True)
class StudentConfig:
    widths: tuple[int, ...] = (12, 24, 48, 64, 96)
    n_levels: int = 4  # sampled decoder levels, finest first
    view_embedding: int = 128
    hidden: tuple[int, ...] = (192,)
    n_frequencies: int = 6
    feature_dim: int = POINT_FEATURE_DIM
    view_size: int = DEFAULT_VIEW_SIZE  # the normalised view grid the model was trained on
    iso_pixel_mm: float = DEFAULT_ISO_PIXEL_MM

    @property
    def field_mm(self) -> float:
        """Width of the normalised views at the isocentre."""
        return self.view_size * self.iso_pixel_mm

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> StudentConfig:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass
class EncodedViews:
    """Encoder output of a batch of pairs, reusable for many point queries."""

    maps: list[torch.Tensor]  # per level (B * 2, C, h, w)
    projections: torch.Tensor  # (B, 2, 3, 4)
    reference_depths: torch.Tensor  # (B, 2)
    size: tuple[int, int]  # (W, H) of the normalised views
    folded: FoldedFirstLayer | None = None  # inference: made on the first query, then reused


@dataclass(frozen=True)
class FoldedFirstLayer:
    """The per-view layer's weights applied to every pixel of every sampled level, for the
    first pair: bilinear sampling with zero padding is linear in the map, so sampling the
    map W_l m_l gives W_l times the sampled features exactly. The per-level products then
    run once per pixel (about 44 000 rows at 128 px) instead of once per query point, and
    the four levels' sampling becomes one weighted gather of 16 rows per point and view.

    Each level's table carries a zero border, one row and column before and two after:
    with tap coordinates clamped to [-1, size], every tap that grid_sample would read as
    zero padding lands on a zero row, so no tap needs a mask."""

    table: torch.Tensor  # (rows, E): W_l m_l per padded pixel, [view][level][row][column]
    row_offsets: torch.Tensor  # (V, L) int64: first row of each view's level
    map_sizes: torch.Tensor  # (L, 2) float32: (h, w) of each level's map, unpadded
    tap_steps: torch.Tensor  # (L, 4) int64: the taps' rows from the corner, +0 +1 +w' +w'+1
    positional_weight: torch.Tensor  # (E, P): the layer's columns for the positional code
    bias: torch.Tensor  # (E,)


class XrayStudent(nn.Module):
    def __init__(self, config: StudentConfig | None = None) -> None:
        super().__init__()
        self.config = config or StudentConfig()
        c = self.config
        self.encoder = UNet(2, 1, c.widths, n_outputs=c.n_levels)
        self.positional = FourierEncoding(3, c.n_frequencies)
        sampled = sum(self.encoder.output_channels)
        self.view_mlp = nn.Sequential(
            nn.Linear(sampled + self.positional.out_dim, c.view_embedding), nn.ReLU(inplace=True)
        )
        self.decoder = PointDecoder(2 * c.view_embedding, c.hidden, c.feature_dim)

    def encode(
        self, images: torch.Tensor, projections: torch.Tensor, reference_depths: torch.Tensor
    ) -> EncodedViews:
        """images (B, 2, H, W) normalised line integrals; projections (B, 2, 3, 4)."""
        batch, views, height, width = images.shape
        flat = (images.reshape(batch * views, 1, height, width) * IMAGE_SCALE).contiguous(
            memory_format=torch.channels_last
        )
        return EncodedViews(self.encoder(flat), projections, reference_depths, (width, height))

    def query(
        self, encoded: EncodedViews, points: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """points (B, N, 3) patient mm -> (point features (B, N, F), logits (B, N, 5))."""
        pixels, depth = project(encoded.projections.to(points.dtype), points)
        width, height = encoded.size
        grid = pixels_to_grid(pixels, width, height)  # (B, 2, N, 2)
        batch, views, count, _ = grid.shape
        flat_grid = grid.reshape(batch * views, count, 2)
        sampled = torch.cat([sample_pixel_features(m, flat_grid) for m in encoded.maps], dim=-1)
        relative_depth = (depth - encoded.reference_depths.unsqueeze(-1)) / DEPTH_SCALE_MM
        coords = torch.cat([grid, relative_depth.unsqueeze(-1)], dim=-1)
        coords = coords.reshape(batch * views, count, 3)
        embedded = self.view_mlp(torch.cat([sampled, self.positional(coords)], dim=-1))
        embedded = embedded.reshape(batch, views, count, -1).permute(0, 2, 1, 3)
        return self.decoder(embedded.reshape(batch, count, -1))

    def logits_channels_first(
        self,
        encoded: EncodedViews,
        points: torch.Tensor,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Inference for the first pair of `encoded`: points (N, 3) mm -> logits (5, N).

        The same function as `query`, for one pair and many points (callers chunk N; 16 384
        points keep the activations in the caches). The per-view layer runs folded into
        the maps (`FoldedFirstLayer`, made once per pair): one weighted gather
        (`embedding_bag`) of the sampled levels plus a product for the positional code. It
        replaces 2 x 160 x 128 multiply-adds per point, the grid sampling and the
        concatenation of the sampled features, which took a third of the time. Each
        decoder layer is one oneDNN matrix product with its bias and ReLU fused in
        (`_dense`). With `dtype=torch.bfloat16` the decoder's products run in bfloat16 (much
        faster where the CPU has AVX512-BF16 or AMX); the rest stays in float32 and the
        logits are returned in float32.
        """
        if encoded.folded is None:
            encoded.folded = self.fold_first_layer(encoded)
        folded = encoded.folded
        pixels, depth = project(encoded.projections[:1].to(points.dtype), points[None])
        width, height = encoded.size
        grid = pixels_to_grid(pixels, width, height)[0]  # (V, N, 2)
        views, count = grid.shape[:2]
        relative_depth = (depth[0] - encoded.reference_depths[0, :, None]) / DEPTH_SCALE_MM
        # point-major, then view: row p * V + v, so the embeddings come out as `query`
        # concatenates them, [view 0, view 1] per point, without a copy
        coords = torch.cat([grid, relative_depth[..., None]], dim=-1).transpose(0, 1)
        index, weight = _bilinear_taps(pixels[0], (width, height), folded)
        code = self.positional(coords.reshape(count * views, 3))
        embedded = _dense_product(code, folded.positional_weight, folded.bias, torch.float32)
        embedded += F.embedding_bag(index, folded.table, per_sample_weights=weight, mode="sum")
        features = embedded.relu_().reshape(count, -1).to(dtype)
        for layer in self.decoder.body:
            if isinstance(layer, nn.Linear):  # each is followed by a ReLU (PointDecoder)
                features = _dense(features, layer, dtype, relu=True)
        logits = _dense(features, self.decoder.classifier, dtype, relu=False)
        return logits.float().t()

    @torch.no_grad()
    def fold_first_layer(self, encoded: EncodedViews) -> FoldedFirstLayer:
        """The per-view layer's weight blocks applied to the first pair's maps."""
        first = self.view_mlp[0]
        views = encoded.projections.shape[1]
        tables, offsets, sizes, rows = [], [], [], 0
        for view in range(views):
            start = 0
            for level_map in encoded.maps:
                channels, height, width = level_map.shape[1:]
                block = first.weight[:, start : start + channels]
                table = torch.einsum("chw,ec->hwe", level_map[view], block)
                table = F.pad(table, (0, 0, 1, 2, 1, 2))  # the zero border (see the class)
                tables.append(table.flatten(0, 1))
                offsets.append(rows)
                sizes.append((height, width))
                rows += tables[-1].shape[0]
                start += channels
        levels = len(encoded.maps)
        padded_w = torch.tensor([w + 3 for _, w in sizes[:levels]], dtype=torch.int64)
        return FoldedFirstLayer(
            torch.cat(tables).contiguous(),
            torch.tensor(offsets, dtype=torch.int64).reshape(views, levels),
            torch.tensor(sizes[:levels], dtype=torch.float32),
            torch.stack(
                [torch.zeros_like(padded_w), torch.ones_like(padded_w), padded_w, padded_w + 1], 1
            ),
            first.weight[:, start:].contiguous(),
            first.bias.detach(),
        )

    def forward(
        self,
        images: torch.Tensor,
        projections: torch.Tensor,
        reference_depths: torch.Tensor,
        points: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.query(self.encode(images, projections, reference_depths), points)


def _bilinear_taps(
    pixels: torch.Tensor, size: tuple[int, int], folded: FoldedFirstLayer
) -> tuple[torch.Tensor, torch.Tensor]:
    """pixels (V, N, 2) of the normalised views -> the rows of `folded.table` and their
    weights, (N * V, 4 levels * 4 taps), point-major, for `embedding_bag`. The taps and
    weights of `grid_sample(align_corners=False, padding_mode="zeros")` on each level."""
    width, height = size
    views, count = pixels.shape[:2]
    map_h, map_w = folded.map_sizes[:, 0], folded.map_sizes[:, 1]  # (L,)
    pixels = pixels.transpose(0, 1)[:, :, None, :]  # (N, V, 1, 2)
    # a level's pixel coordinate: grid_sample's unnormalisation of pixels_to_grid's output,
    # clamped to [-1, size] (beyond, every tap reads zero either way)
    x = torch.clamp((pixels[..., 0] + 0.5) * (map_w / width) - 0.5, min=-1.0).minimum(map_w)
    y = torch.clamp((pixels[..., 1] + 0.5) * (map_h / height) - 0.5, min=-1.0).minimum(map_h)
    x0, y0 = x.floor(), y.floor()  # (N, V, L)
    fx, fy = x - x0, y - y0
    padded_w = folded.tap_steps[:, 2]  # columns of a padded level
    corner = (y0.long() + 1) * padded_w + (x0.long() + 1) + folded.row_offsets  # (N, V, L)
    index = corner[..., None] + folded.tap_steps
    gx, gy = 1.0 - fx, 1.0 - fy
    weight = torch.stack([gx * gy, fx * gy, gx * fy, fx * fy], dim=-1)
    return index.reshape(count * views, -1), weight.reshape(count * views, -1)


def _dense(x: torch.Tensor, layer: nn.Linear, dtype: torch.dtype, relu: bool) -> torch.Tensor:
    """x (N, in) -> layer(x), optionally ReLU'd (see `_dense_product`)."""
    return _dense_product(x, layer.weight, layer.bias, dtype, relu)


def _dense_product(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    dtype: torch.dtype,
    relu: bool = False,
) -> torch.Tensor:
    """x (N, in) -> x W^T + b, optionally ReLU'd, as one fused oneDNN product where this
    torch has it (CPU builds with mkldnn) for this dtype on this CPU, else as a product and
    an in-place ReLU. (For the 39-wide positional code it is ~1.7x faster than addmm.)"""
    weight, bias = weight.to(dtype), bias.to(dtype)
    if _FUSED_LINEAR is not None and dtype not in _FUSED_UNSUPPORTED:
        try:
            return _FUSED_LINEAR(x.contiguous(), weight, bias, "relu" if relu else "none", [], "")
        except RuntimeError:
            # oneDNN has no bfloat16 kernel on a CPU without AVX512 (e.g. an AVX2-only EPYC):
            # it refuses to build the primitive; the plain product emulates bfloat16 instead
            _FUSED_UNSUPPORTED.add(dtype)
    out = torch.addmm(bias, x, weight.t())
    return out.relu_() if relu else out


_FUSED_LINEAR = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
_FUSED_UNSUPPORTED: set[torch.dtype] = set()  # dtypes oneDNN refused on this CPU
