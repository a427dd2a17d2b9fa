"""Delivery of one blinded knee item: bytes on the wire and first frame in headless Chromium.

Baseline in the same run: the four raw STL files a naive platform would send.
Run: .venv/bin/python benchmarks/bench_reading_delivery.py   (needs /usr/bin/chromium and
the bundle from `npm run -s build`). Serves files on 127.0.0.1 only.
"""

from __future__ import annotations

import functools
import gzip
import http.server
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import trimesh

from reconstruction import blinding

ROOT = Path(__file__).resolve().parent.parent
LIMIT_BYTES = 1_000_000
LIMIT_FIRST_FRAME_MS = 1500
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-unsafe-swiftshader",
]


def knee() -> dict[str, trimesh.Trimesh]:
    """A knee-sized phantom: fine, dense meshes as a CT pipeline produces them."""
    sizes = {
        "femur": ((32, 28, 45), (0, 0, 40)),
        "tibia": ((32, 28, 45), (0, 0, -45)),
        "fibula": ((9, 9, 30), (30, 5, -60)),
        "patella": ((20, 10, 22), (0, -40, 35)),
    }
    meshes = {}
    for bone, (radii, offset) in sizes.items():
        sphere = trimesh.creation.icosphere(subdivisions=6)
        sphere.vertices = sphere.vertices * radii + offset
        meshes[bone] = sphere
    return meshes


def first_frame_ms(folder: Path, page: str, repeats: int = 3) -> list[float]:
    from playwright.sync_api import sync_playwright

    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    times = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", headless=True, args=ARGS
            )
            for _ in range(repeats):
                tab = browser.new_page(viewport={"width": 1280, "height": 900})
                start = time.perf_counter()
                tab.goto(f"http://127.0.0.1:{server.server_port}/{page}")
                tab.wait_for_selector("[data-rendered=true]", timeout=30000)
                times.append((time.perf_counter() - start) * 1000)
                tab.close()
            browser.close()
    finally:
        server.shutdown()
    return times


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def main() -> None:
    meshes = knee()
    raw_stl = sum(len(m.export(file_type="stl")) for m in meshes.values())
    started = time.perf_counter()
    glb = blinding.blinded_glb(blinding.normalise_knee(meshes))
    normalise_s = time.perf_counter() - started
    glb_gzip = len(gzip.compress(glb, 6))
    print(f"{'delivery':<34}{'bytes':>12}")
    print(f"{'baseline: raw STL, four bones':<34}{raw_stl:>12,}")
    print(f"{'blinded GLB (quantised)':<34}{len(glb):>12,}")
    print(f"{'blinded GLB, gzip (as served)':<34}{glb_gzip:>12,}")
    print(f"normalisation time: {normalise_s:.1f} s (background job, once per item)")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "model.glb").write_bytes(glb)
        (folder / "viewer.js").write_bytes((ROOT / "static/dist/reading-viewer.js").read_bytes())
        (folder / "index.html").write_text(
            '<!doctype html><div id="viewer" data-reading-viewer data-model-url="model.glb" '
            'style="width:900px;height:700px"></div><script type="module" src="viewer.js"></script>'
        )
        times = first_frame_ms(folder, "index.html")
    print(
        f"first frame (page load -> model drawn), ms: {', '.join(f'{t:.0f}' for t in times)}; "
        f"median {np.median(times):.0f}"
    )
    ok = glb_gzip <= LIMIT_BYTES and np.median(times) <= LIMIT_FIRST_FRAME_MS
    print(
        f"limits: <= {LIMIT_BYTES:,} bytes, <= {LIMIT_FIRST_FRAME_MS} ms -> {'PASS' if ok else 'FAIL'}"
    )


if __name__ == "__main__":
    main()
