"""Vectorised exercises against per-sample Python loops, forward + backward.

Run from the repository root: ``python benchmarks/bench_sparsity.py``. The reference
functions come from the solutions: every exercise that ``shared/EXERCISES.md`` marks
vectorised (04's sparsity losses and unit activation, 03's salt-and-pepper noise). Each must be at least
``TARGET`` times faster than the same loss written with a per-sample loop
``for i in range(B): ... x[i] ...`` on a (256, 1024) batch, else the exit status is 1.
The same loop over rows (``for row in x``, one backward node for all rows) is timed too,
for information. Times are best-of-N, the candidates taking turns (robust to other load
on the machine), with one torch thread by default, so that the speed-up measures the code,
not how idle the cores happen to be.
Peak memory: the most tensor memory allocated at once during one forward + backward,
inputs excluded (allocation events of torch.profiler).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
B, H = 256, 1024
TARGET = 20.0
# EXERCISES.md sets the 20x target for the sparsity losses; the other vectorised
# exercises are measured against the same bar for information.
TARGETED = {"l1_sparsity", "kl_sparsity", "sparse_ae_loss (l1)", "sparse_ae_loss (kl)"}
RHO, LAMBDA = 0.05, 0.1


def by_index(t: torch.Tensor) -> Iterator[torch.Tensor]:
    """``t[i]`` for each sample: each index has its own backward (a full-size gradient)."""
    return (t[i] for i in range(t.shape[0]))


def by_row(t: torch.Tensor) -> Iterator[torch.Tensor]:
    """``for row in t``: torch unbinds once, so the backward is a single stack."""
    return iter(t)


def l1_loop(z, rows=by_index):
    total = z.new_zeros(())
    for z_b in rows(z):
        total = total + z_b.abs().sum()
    return total / z.numel()


def kl_loop(a, rho, eps=1e-6, rows=by_index):
    flat = a.reshape(a.shape[0], -1)
    acc = torch.zeros_like(flat[0])
    for a_b in rows(flat):  # batch mean accumulated sample by sample
        acc = acc + a_b
    rho_hat = (acc / flat.shape[0]).clamp(eps, 1 - eps)
    kl = rho * torch.log(rho / rho_hat) + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    return kl.sum()


def unit_activation_loop(z, rows=by_index):
    out = []
    for z_b in rows(z):
        out.append(2 * (torch.sigmoid(z_b.abs()) - 0.5))
    return torch.stack(out)


def salt_and_pepper_loop(x, p, rows=by_index):
    u = torch.rand_like(x)  # the same single draw as the exercise, then sample by sample
    out = []
    for x_b, u_b in zip(rows(x), rows(u)):
        noisy = torch.where(u_b < p / 2, torch.zeros_like(x_b), x_b)
        out.append(torch.where((u_b >= p / 2) & (u_b < p), torch.ones_like(x_b), noisy))
    return torch.stack(out)


def scalar(fn: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """A tensor-valued function made a loss (its sum), so that it has a backward."""
    return lambda: fn().sum()


def sparse_ae_loss_loop(x_hat, x, z, lambda_s, penalty="l1", rho=0.05, rows=by_index):
    if penalty not in ("l1", "kl"):
        raise ValueError(penalty)
    mse = x_hat.new_zeros(())
    for xh_b, x_b in zip(rows(x_hat), rows(x)):
        mse = mse + ((xh_b - x_b) ** 2).sum()
    mse = mse / x.numel()
    if penalty == "l1":
        return mse + lambda_s * l1_loop(z, rows)
    return mse + lambda_s * kl_loop(unit_activation_loop(z, rows), rho, rows=rows)


def best_times(fns: list[Callable[[], torch.Tensor]], leaves: list[torch.Tensor], rounds=10):
    """Best-of milliseconds for one forward + backward of each function.

    The functions take turns, round after round (each ~40 ms or at least one call), so
    that all of them are sampled across the same stretch of time: a busy spell on the
    machine then slows every candidate, not just the one that happened to be running.
    """

    def once(fn) -> float:
        for t in leaves:
            t.grad = None
        start = time.perf_counter()
        fn().backward()
        return time.perf_counter() - start

    best = [float("inf")] * len(fns)
    for fn in fns:  # warm-up
        once(fn)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            spent = 0.0
            while spent < 0.04:
                sample = once(fn)
                best[i], spent = min(best[i], sample), spent + sample
    return [1e3 * b for b in best]


@contextlib.contextmanager
def quiet_stderr():
    """Silence what C++ libraries print on fd 2 (the CUDA build's profiler says
    ``gpuGetDeviceCount failed`` on a machine without a GPU)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def peak_mib(fn: Callable[[], torch.Tensor], leaves: list[torch.Tensor]) -> float | None:
    """Peak tensor memory (MiB) allocated during one forward + backward, inputs excluded."""
    try:
        from torch.profiler import ProfilerActivity, profile

        for t in leaves:
            t.grad = None
        with (
            quiet_stderr(),
            profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
        ):
            fn().backward()
        events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
        current = peak = 0
        for e in sorted(events, key=lambda e: e.start_ns()):
            current += e.nbytes()  # positive: allocation, negative: release
            peak = max(peak, current)
        return peak / 2**20
    except Exception:  # noqa: BLE001 - profiler internals move between versions
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--results", type=Path, help="merge the figures into this JSON file")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from autograder.references import solution_namespace

    ref = solution_namespace("04_sparse_autoencoder")
    dae = solution_namespace("03_denoising_autoencoder")
    g = torch.Generator().manual_seed(0)
    z = torch.randn(B, H, generator=g).requires_grad_()
    a = (0.2 * torch.rand(B, H, generator=g)).requires_grad_()
    x = torch.rand(B, H, generator=g)
    x_hat = torch.rand(B, H, generator=g).requires_grad_()

    rows = [
        ("l1_sparsity", lambda: ref.l1_sparsity(z), lambda r: l1_loop(z, r), [z]),
        (
            "unit_activation",
            scalar(lambda: ref.unit_activation(z)),
            lambda r: unit_activation_loop(z, r).sum(),
            [z],
        ),
        (
            "add_salt_and_pepper",
            scalar(lambda: dae.add_salt_and_pepper(x_hat, 0.2)),
            lambda r: salt_and_pepper_loop(x_hat, 0.2, r).sum(),
            [x_hat],
        ),
        ("kl_sparsity", lambda: ref.kl_sparsity(a, RHO), lambda r: kl_loop(a, RHO, rows=r), [a]),
    ]
    for p in ("l1", "kl"):
        rows.append(
            (
                f"sparse_ae_loss ({p})",
                lambda p=p: ref.sparse_ae_loss(x_hat, x, z, LAMBDA, p, RHO),
                lambda r, p=p: sparse_ae_loss_loop(x_hat, x, z, LAMBDA, p, RHO, rows=r),
                [x_hat, z],
            )
        )

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), ({B}, {H}) batch")
    print(f"best ms per forward + backward; target: vectorised >= {TARGET:.0f}x faster than x[i]")
    header = (
        f"{'function':<21} {'vectorised':>10} {'loop x[i]':>10} {'speed-up':>8}"
        f" {'loop rows':>10} {'speed-up':>8} {'peak MiB vec/loop':>18}"
    )
    print(header)
    print("-" * len(header))
    failures, figures = [], {}
    for name, vec, loop, leaves in rows:
        torch.manual_seed(0)  # random exercises and their loops draw the same numbers
        v = vec()
        torch.manual_seed(0)
        lp = loop(by_index)
        if not torch.allclose(v, lp, rtol=1e-4, atol=1e-5):
            failures.append(f"{name}: the loop disagrees with the reference ({lp} vs {v})")
        indexed = functools.partial(loop, by_index)
        t_vec, t_idx, t_row = best_times([vec, indexed, functools.partial(loop, by_row)], leaves)
        m_vec, m_loop = peak_mib(vec, leaves), peak_mib(indexed, leaves)
        mem = "n/a" if m_vec is None or m_loop is None else f"{m_vec:.1f} / {m_loop:.1f}"
        speedup = t_idx / t_vec
        print(
            f"{name:<21} {t_vec:>10.3f} {t_idx:>10.2f} {speedup:>7.1f}x"
            f" {t_row:>10.2f} {t_row / t_vec:>7.1f}x {mem:>18}"
        )
        figures[name] = {
            "vectorised_ms": round(t_vec, 4),
            "loop_ms": round(t_idx, 3),
            "speedup": round(speedup, 1),
            "target": TARGET if name in TARGETED else None,
            "met": speedup >= TARGET if name in TARGETED else None,
            "peak_mib": None if m_vec is None else round(m_vec, 2),
            "peak_mib_loop": None if m_loop is None else round(m_loop, 2),
        }
        if speedup < TARGET and name in TARGETED:
            failures.append(
                f"{name}: only {speedup:.1f}x faster than its loop (target {TARGET:.0f}x)"
            )
    for line in failures:
        print("FAIL", line)
    if not failures:
        print(f"OK: every vectorised loss is at least {TARGET:.0f}x faster than its x[i] loop")
    if args.results:
        data = json.loads(args.results.read_text()) if args.results.exists() else {}
        data["vectorised"] = {"batch": [B, H], "threads": torch.get_num_threads(), **figures}
        args.results.parent.mkdir(parents=True, exist_ok=True)
        args.results.write_text(json.dumps(data, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
