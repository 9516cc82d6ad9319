"""numpy's f32 matmul (its bundled OpenBLAS) on the shapes of `cargo run --example mmbench`,
in mmbench's output format. Used by benches/side_by_side.sh; never by CI or the tests."""
import time

import numpy as np

for m, k, n in [(1024, 1024, 1024), (1024, 1024, 2752), (1024, 2752, 1024), (2048, 2048, 2048)]:
    a = np.random.rand(m, k).astype(np.float32)
    b = np.random.rand(k, n).astype(np.float32)
    a @ b
    start = time.perf_counter()
    for _ in range(5):
        a @ b
    seconds = (time.perf_counter() - start) / 5
    print(f"{m}x{k}x{n} F32: {seconds:.3f} s {2 * m * k * n / seconds / 1e9:.1f} GFLOP/s")
