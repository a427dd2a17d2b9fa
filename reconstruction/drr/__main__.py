"""Command line: biplanar DRRs of a CT.

    python -m reconstruction.drr --ct CT.nii.gz --separation 90 --out DIR
        [--dose 1e5] [--size 512] [--seed 0] [--noiseless] ...

Writes DIR/view1.npy, view2.npy (float32; line integrals -log(I/I0) by default, or
intensity I/I0 with --image-kind intensity), 16-bit view1.png/view2.png previews and
geometry.json (layout documented in reconstruction/io/xray.py). Exit status 2 with a
one-line message on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from tqdm import tqdm

from reconstruction.drr.geometry import (
    DEFAULT_DETECTOR_PX,
    DEFAULT_PIXEL_SPACING_MM,
    DEFAULT_SOURCE_DETECTOR_MM,
    DEFAULT_SOURCE_ISOCENTRE_MM,
)
from reconstruction.drr.noise import DEFAULT_PHOTONS_PER_PIXEL
from reconstruction.drr.projector import MU_WATER_PER_MM
from reconstruction.drr.simulate import DETECTOR_WIDTH_MM, DRRSettings, bone_centre, simulate_pair
from reconstruction.errors import ImagingError
from reconstruction.io import read_volume, write_xray_pair


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="python -m reconstruction.drr", description=__doc__.split("\n")[0])
    parser.add_argument("--ct", required=True, help="CT in HU: NIfTI, NRRD or a DICOM directory")
    parser.add_argument(
        "--separation", required=True, type=float, help="degrees between views, 30-90"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--dose", type=float, default=DEFAULT_PHOTONS_PER_PIXEL, help="photons per pixel"
    )
    parser.add_argument(
        "--size", type=int, default=DEFAULT_DETECTOR_PX, help="detector pixels per side"
    )
    parser.add_argument("--seed", type=int, default=0, help="noise seed")
    parser.add_argument(
        "--pixel-spacing",
        type=float,
        default=None,
        help=f"mm at the detector; default keeps a {DETECTOR_WIDTH_MM:.1f} mm detector "
        f"({DEFAULT_PIXEL_SPACING_MM} mm at {DEFAULT_DETECTOR_PX} px)",
    )
    parser.add_argument("--first-angle", type=float, default=0.0, help="angle of view 1 (0 = AP)")
    parser.add_argument(
        "--sid", type=float, default=DEFAULT_SOURCE_ISOCENTRE_MM, help="source-isocentre mm"
    )
    parser.add_argument(
        "--sdd", type=float, default=DEFAULT_SOURCE_DETECTOR_MM, help="source-detector mm"
    )
    parser.add_argument(
        "--isocentre", type=float, nargs=3, default=None, help="patient mm; default volume centre"
    )
    parser.add_argument(
        "--centre-on-bones",
        action="store_true",
        help="isocentre at the middle of the bones (>= 200 HU), as a radiographer centres the "
        "beam on the knee and the site's DRR job does",
    )
    parser.add_argument("--noiseless", action="store_true", help="ideal line integrals, no noise")
    parser.add_argument("--blur", type=float, default=0.5, help="detector blur sigma in pixels")
    parser.add_argument("--scatter", type=float, default=0.0, help="scatter-to-primary fraction")
    parser.add_argument(
        "--electronic-noise", type=float, default=2.0, help="read-out sigma in photons"
    )
    parser.add_argument(
        "--clip-hu", type=float, nargs=2, default=None, help="HU window before projection"
    )
    parser.add_argument(
        "--mu-water", type=float, default=MU_WATER_PER_MM, help="mu of water per mm"
    )
    parser.add_argument(
        "--image-kind", choices=("line_integral", "intensity"), default="line_integral"
    )
    return parser


def _isocentre(args: argparse.Namespace, ct) -> tuple[float, float, float] | None:
    if args.isocentre and args.centre_on_bones:
        raise ImagingError("give either --isocentre or --centre-on-bones, not both")
    if args.centre_on_bones:
        return bone_centre(ct)
    return tuple(args.isocentre) if args.isocentre else None


def run(args: argparse.Namespace) -> None:
    if args.size < 8 or args.size > 4096:  # named after the flag, checked before reading the CT
        raise ImagingError(f"--size must be between 8 and 4096 pixels, got {args.size}")
    ct = read_volume(args.ct, require_ct=True)
    settings = DRRSettings(
        separation_deg=args.separation,
        first_angle_deg=args.first_angle,
        size_px=args.size,
        pixel_spacing_mm=args.pixel_spacing,
        source_isocentre_mm=args.sid,
        source_detector_mm=args.sdd,
        isocentre_mm=_isocentre(args, ct),
        dose_photons=None if args.noiseless else args.dose,
        blur_sigma_px=args.blur,
        scatter_fraction=args.scatter,
        electronic_sigma=args.electronic_noise,
        clip_hu=tuple(args.clip_hu) if args.clip_hu else None,
        mu_water_per_mm=args.mu_water,
        image_kind=args.image_kind,
        seed=args.seed,
    )
    with tqdm(total=2 * args.size**2, unit="ray", delay=2.0, desc="DRR") as bar:
        pair = simulate_pair(ct, settings, progress=bar.update)
    metadata = {"ct": str(args.ct), **pair.metadata}
    images = [view.image for view in pair.views]
    geometries = [view.geometry for view in pair.views]
    write_xray_pair(args.out, images, geometries, image_kind=pair.image_kind, metadata=metadata)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ImagingError, OSError, ValueError) as exc:
        message = " ".join(str(exc).split())  # one line, whatever the exception said
        print(f"error: {message}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}/view1.npy, view2.npy, geometry.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
