"""Trial: Winograd convolutions for HiFi-GAN's 1-D layers in plain PyTorch ops, against oneDNN (docs/performance.md).

The only way to be faster than the official eager code in fp32 where that code already runs at the GEMM
rate is to do fewer multiplications. F(4,4) Winograd with the kernel split into 4-tap pieces (k=11 -> 3
pieces, shifted by whole tiles, so one input transform serves all) halves the multiply count and keeps the
error at ~1e-6, but its input and output transforms are separate memory passes here; this prints the time
per layer shape against F.conv1d (oneDNN) and the error. Measured 2026-12-04 on the 2-core AVX-512 EPYC:
0.46-1.06x of oneDNN, error 9e-7 to 1.4e-6. Not used by vocoder; kept so the claim can be re-run:

    python scripts/experiments/winograd_trial.py
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5)  # F(4,4): 7 points, the 7th is infinity
SHAPES = ((128, 27520, 11), (128, 27520, 7), (128, 27520, 3), (64, 55040, 11), (32, 110080, 11), (256, 3440, 11))


def toom_cook(m: int, r: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A^T [m, n], G [n, r], B^T [n, n] for F(m, r) from evaluation points (n = m + r - 1): the correlation
    y = A^T [(G g) * (B^T d)] is the transpose of the polynomial product through those points."""
    n = m + r - 1

    def vandermonde(cols: int) -> np.ndarray:
        v = np.zeros((n, cols))
        for i, a in enumerate(POINTS[: n - 1]):
            v[i] = [a**j for j in range(cols)]
        v[n - 1, cols - 1] = 1.0  # the point at infinity: the leading coefficient
        return v

    b_t = np.linalg.inv(vandermonde(n)).T
    return torch.tensor(vandermonde(m).T), torch.tensor(vandermonde(r)), torch.tensor(b_t)


class WinogradConv1d:
    """'same' Conv1d (stride 1, dilation 1) of weights w [C_out, C_in, k] as F(m, m) on k split into m-tap
    pieces: the pieces are whole tiles apart, so one input transform serves them all. x [C_in, T]."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor, m: int = 4) -> None:
        c_out, c_in, k = w.shape
        self.m, self.points, self.pieces, self.pad = m, 2 * m - 1, -(-k // m), (k - 1) // 2
        a_t, g, b_t = toom_cook(m, m)
        padded = torch.zeros(c_out, c_in, self.pieces * m, dtype=torch.float64)
        padded[..., :k] = w.double()
        self.u = [torch.einsum("pr,oir->poi", g, padded[..., j * m : (j + 1) * m]).float().contiguous()
                  for j in range(self.pieces)]  # [points, C_out, C_in] per piece
        self.a_t, self.b_t, self.bias = a_t.float(), b_t.float(), b

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        c, t = x.shape
        m, p = self.m, self.points
        tiles_out = -(-t // m)
        tiles_in = tiles_out + self.pieces - 1
        length = tiles_in * m + p - m
        xp = F.pad(x, (self.pad, length - t - self.pad))
        tiles = xp.as_strided((c, p, tiles_in), (xp.stride(0), 1, m))
        v = torch.matmul(self.b_t, tiles).permute(1, 0, 2)  # [points, C_in, tiles]
        y = torch.bmm(self.u[0], v[:, :, :tiles_out])
        for j in range(1, self.pieces):
            y.baddbmm_(self.u[j], v[:, :, j : j + tiles_out])
        out = torch.matmul(self.a_t, y.permute(1, 0, 2))  # [C_out, m, tiles]
        return out.transpose(1, 2).reshape(-1, tiles_out * m)[:, :t] + self.bias[:, None]


def best_of(fn: Callable[[], torch.Tensor], repeats: int = 5) -> tuple[float, torch.Tensor]:
    fn(), fn()
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - start) / repeats, out


def main() -> None:
    torch.set_num_threads(2)
    for c, t, k in SHAPES:
        x, w, b = torch.randn(c, t), torch.randn(c, c, k) / (c * k) ** 0.5, torch.randn(c)
        t_ref, ref = best_of(lambda: F.conv1d(x[None], w, b, padding=k // 2)[0])
        wino = WinogradConv1d(w, b)
        t_win, out = best_of(lambda: wino(x))
        err = ((out - ref).abs().max() / ref.abs().max()).item()
        print(f"C={c} T={t} k={k}: oneDNN {t_ref * 1e3:.1f} ms, Winograd {t_win * 1e3:.1f} ms "
              f"(x{t_ref / t_win:.2f}), rel err {err:.1e}")


if __name__ == "__main__":
    main()
