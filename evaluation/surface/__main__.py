"""``python -m evaluation.surface REFERENCE_MESH RESULT_MESH [--json] [--tolerance MM] [--roi X Y Z]``

Prints the surface metrics of a result mesh against a reference mesh (STL, PLY, OBJ or GLB,
coordinates in mm). Bad input: exit status 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys

from .errors import SurfaceMetricError
from .metrics import DEFAULTS, compare_pair
from .roi import ALIGNMENTS, Slab

PRIMARY = ("assd", "masd", "rms", "hd", "hd95", "nsd", "chamfer", "signed_mean", "dice", "iou")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m evaluation.surface",
        description="Surface distance and overlap metrics of a result mesh against a reference mesh (mm).",
    )
    parser.add_argument("reference", help="reference mesh (CT), STL/PLY/OBJ/GLB in mm")
    parser.add_argument("result", help="result mesh (X-ray reconstruction), STL/PLY/OBJ/GLB in mm")
    parser.add_argument(
        "--json", action="store_true", help="print JSON (metrics, units, definitions, parameters)"
    )
    parser.add_argument(
        "--tolerance",
        type=float,
        default=DEFAULTS["tolerance"],
        metavar="MM",
        help="normalised surface Dice tolerance (default %(default)s mm)",
    )
    parser.add_argument(
        "--roi",
        type=float,
        nargs=3,
        metavar=("X", "Y", "Z"),
        help="crop both meshes to a slab around this joint-line point (mm)",
    )
    parser.add_argument(
        "--roi-axis",
        type=float,
        nargs=3,
        default=(0.0, 0.0, 1.0),
        metavar=("AX", "AY", "AZ"),
        help="slab axis (default 0 0 1)",
    )
    parser.add_argument(
        "--roi-below",
        type=float,
        default=70.0,
        metavar="MM",
        help="slab extent below the centre (default 70)",
    )
    parser.add_argument(
        "--roi-above",
        type=float,
        default=70.0,
        metavar="MM",
        help="slab extent above the centre (default 70)",
    )
    parser.add_argument(
        "--align",
        choices=ALIGNMENTS,
        default=DEFAULTS["alignment"],
        help="alignment policy: none (native frames, default) or rigid ICP of the result",
    )
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument(
        "--density",
        type=float,
        default=DEFAULTS["density"],
        metavar="PER_MM2",
        help="area-weighted samples per mm^2 (default %(default)s)",
    )
    sampling.add_argument(
        "--samples", type=int, metavar="N", help="samples per surface instead of a density"
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULTS["seed"], help="sampling seed (default %(default)s)"
    )
    parser.add_argument(
        "--grid",
        type=float,
        default=DEFAULTS["grid_spacing"],
        metavar="MM",
        help="voxel size for volume Dice/IoU, <= 0.25 (default %(default)s)",
    )
    parser.add_argument(
        "--no-volume", action="store_true", help="skip volume Dice/IoU (allows open meshes)"
    )
    parser.add_argument(
        "--no-signed",
        action="store_true",
        help="skip the signed distance (allows an open reference)",
    )
    parser.add_argument(
        "--no-convergence", action="store_true", help="skip the double-density convergence check"
    )
    parser.add_argument(
        "--error-map", metavar="GLB", help="write the result mesh coloured by signed distance"
    )
    parser.add_argument("--colorbar", metavar="PNG", help="write the colour bar of the error map")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        roi = None
        if args.roi is not None:
            roi = Slab(
                centre=tuple(args.roi),
                axis=tuple(args.roi_axis),
                below=args.roi_below,
                above=args.roi_above,
            )
        if args.error_map and args.no_signed:
            raise SurfaceMetricError("--error-map needs the signed distance: drop --no-signed")
        pair = compare_pair(
            args.reference,
            args.result,
            density=args.density,
            n_samples=args.samples,
            seed=args.seed,
            tolerance=args.tolerance,
            roi=roi,
            alignment=args.align,
            grid_spacing=args.grid,
            volume=not args.no_volume,
            signed=not args.no_signed,
            convergence=not args.no_convergence,
        )
        if args.error_map or args.colorbar:
            from .errormap import write_colorbar, write_error_map  # matplotlib: only when asked

            if args.error_map:
                write_error_map(pair.result_mesh, pair.vertex_signed_distance, args.error_map)
            if args.colorbar:
                write_colorbar(args.colorbar)
    except (SurfaceMetricError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(pair.to_json(), indent=2))
        return 0
    units = pair.to_json()["metric_units"]
    for key in (*PRIMARY, "assd_convergence"):
        if key in pair.metrics:
            print(f"{key:<17}{pair.metrics[key]:12.4f} {units[key]}")
    params = pair.parameters
    print(
        f"density {params['density_per_mm2']['reference']:.3g}/{params['density_per_mm2']['result']:.3g} per mm^2 "
        f"(samples {params['n_samples']['reference']}/{params['n_samples']['result']}), seed {params['seed']}, "
        f"alignment {params['alignment']['method']}, roi {roi.describe() if roi else 'none (whole meshes)'}"
    )
    if params["convergence"] and not params["convergence"]["converged"]:
        print(
            f"warning: ASSD moved {params['convergence']['abs_change_mm']:.4f} mm at double density: raise --density"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
