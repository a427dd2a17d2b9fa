"""keep_freed_memory: a freed CT-sized block is reused instead of faulted in again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROBE = """
import resource, sys
import numpy as np
from reconstruction.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
def faults_of_a_fresh_block():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    block = np.ones(50_000_000, np.float32)  # 200 MB, touched
    del block
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
first = faults_of_a_fresh_block()
print(first, faults_of_a_fresh_block())
"""


def _faults(mode: str) -> tuple[int, int]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_blocks_are_reused_only_with_the_setting() -> None:
    first, again = _faults("default")
    # glibc: unmapped on free, faulted in again (numpy asks for huge pages: ~100 faults)
    assert again > 90 and again > 0.5 * first
    _, reused = _faults("keep")
    assert reused < 0.05 * again


def test_bfloat16_only_where_the_cpu_multiplies_it_natively() -> None:
    from reconstruction.runtime import cpu_has_fast_bfloat16

    assert cpu_has_fast_bfloat16("processor: 0\nflags\t: fpu avx2 avx512f avx512_bf16 sse\n")
    assert cpu_has_fast_bfloat16("flags\t: fpu amx_bf16 amx_tile\n")
    assert not cpu_has_fast_bfloat16("flags\t: fpu avx2 avx512f avx512_vnni\n")
    assert not cpu_has_fast_bfloat16("model name: some cpu\n")


def test_the_environment_chooses_the_inference_dtype() -> None:
    import pytest

    from reconstruction.runtime import cpu_has_fast_bfloat16, inference_dtype_name

    assert inference_dtype_name({"KNEE_INFERENCE_DTYPE": "float32"}) == "float32"
    assert inference_dtype_name({"KNEE_INFERENCE_DTYPE": " BFloat16 "}) == "bfloat16"
    automatic = "bfloat16" if cpu_has_fast_bfloat16() else "float32"
    assert inference_dtype_name({}) == automatic
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        inference_dtype_name({"KNEE_INFERENCE_DTYPE": "float16"})
