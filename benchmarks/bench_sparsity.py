"""Vectorised sparsity losses against per-sample Python loops, forward + backward.

Run from the repository root: ``python benchmarks/bench_sparsity.py``. The reference
functions come from ``solutions/04_sparse_autoencoder.ipynb``; each must be at least
``TARGET`` times faster than its loop on a (256, 1024) batch, else the exit status is 1.
Peak memory is the most tensor memory allocated at once during one forward + backward
beyond the inputs (torch.profiler's memory timeline). One torch thread by default, so that
the speed-up measures the algorithm, not how idle the other cores happen to be.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
B, H = 256, 1024
TARGET = 20.0
RHO, LAMBDA = 0.05, 0.1


def l1_loop(z):
    total = z.new_zeros(())
    for row in z:  # one sample at a time
        total = total + row.abs().sum()
    return total / z.numel()


def kl_loop(a, rho, eps=1e-6):
    rows = a.reshape(a.shape[0], -1)
    acc = torch.zeros_like(rows[0])
    for row in rows:  # batch mean accumulated sample by sample
        acc = acc + row
    rho_hat = (acc / rows.shape[0]).clamp(eps, 1 - eps)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


def unit_activation_loop(z):
    return torch.stack([2 * (torch.sigmoid(row.abs()) - 0.5) for row in z])


def sparse_ae_loss_loop(x_hat, x, z, lambda_s, penalty="l1", rho=0.05):
    if penalty not in ("l1", "kl"):
        raise ValueError(penalty)
    mse = x_hat.new_zeros(())
    for xh_b, x_b in zip(x_hat, x):
        mse = mse + ((xh_b - x_b) ** 2).sum()
    mse = mse / x.numel()
    pen = l1_loop(z) if penalty == "l1" else kl_loop(unit_activation_loop(z), rho)
    return mse + lambda_s * pen


def time_call(fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor], budget: float = 1.0):
    """Best-of milliseconds for one forward + backward, over repeats filling ``budget`` s."""

    def once() -> float:
        for t in leaves:
            t.grad = None
        start = time.perf_counter()
        fn().backward()
        return time.perf_counter() - start

    for _ in range(3):  # warm-up
        once()
    samples, spent = [], 0.0
    while spent < budget or len(samples) < 5:
        samples.append(once())
        spent += samples[-1]
        if len(samples) >= 2000:
            break
    return 1e3 * min(samples)


def peak_mib(fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> float | None:
    """Peak tensor memory (MiB) allocated during one forward + backward, inputs excluded."""
    try:
        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import Action  # private: may move between versions

        for t in leaves:
            t.grad = None
        with profile(
            activities=[ProfilerActivity.CPU],
            profile_memory=True,
            record_shapes=True,
            with_stack=True,
        ) as prof:
            fn().backward()
        current = peak = 0
        for _, action, _, size in prof._memory_profile().timeline:
            if action == Action.CREATE:
                current += size
            elif action == Action.DESTROY:
                current -= size
            peak = max(peak, current)
        return peak / 2**20
    except Exception:  # noqa: BLE001 - the timing matters more than the memory figure
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from autograder.references import solution_namespace

    ref = solution_namespace("04_sparse_autoencoder")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(B, H, generator=g).requires_grad_()
    a = (0.2 * torch.rand(B, H, generator=g)).requires_grad_()
    x = torch.rand(B, H, generator=g)
    x_hat = torch.rand(B, H, generator=g).requires_grad_()

    rows = [
        ("l1_sparsity", lambda: ref.l1_sparsity(z), lambda: l1_loop(z), [z]),
        ("kl_sparsity", lambda: ref.kl_sparsity(a, RHO), lambda: kl_loop(a, RHO), [a]),
    ]
    for penalty in ("l1", "kl"):
        rows.append(
            (
                f"sparse_ae_loss ({penalty})",
                lambda p=penalty: ref.sparse_ae_loss(x_hat, x, z, LAMBDA, p, RHO),
                lambda p=penalty: sparse_ae_loss_loop(x_hat, x, z, LAMBDA, p, RHO),
                [x_hat, z],
            )
        )

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch ({B}, {H}), fwd+bwd")
    header = f"{'function':<22} {'vectorised':>11} {'loop':>10} {'speed-up':>9} {'peak MiB':>14}"
    print(header)
    print("-" * len(header))
    failures = []
    for name, vec, loop, leaves in rows:
        v, lp = vec(), loop()
        if not torch.allclose(v, lp, rtol=1e-4, atol=1e-5):
            failures.append(f"{name}: loop and reference disagree ({float(lp)} vs {float(v)})")
        t_vec, t_loop = time_call(vec, leaves), time_call(loop, leaves)
        m_vec, m_loop = peak_mib(vec, leaves), peak_mib(loop, leaves)
        mem = "n/a" if m_vec is None or m_loop is None else f"{m_vec:.1f} / {m_loop:.1f}"
        speedup = t_loop / t_vec
        print(f"{name:<22} {t_vec:>8.3f} ms {t_loop:>7.2f} ms {speedup:>8.1f}x {mem:>14}")
        if speedup < TARGET:
            failures.append(f"{name}: only {speedup:.1f}x faster than its loop (target {TARGET}x)")
    print("(peak MiB: vectorised / loop)")
    for line in failures:
        print("FAIL", line)
    if not failures:
        print(f"OK: every vectorised loss is at least {TARGET:.0f}x faster than its loop")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
