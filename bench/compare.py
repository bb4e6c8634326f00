"""Run the trainer's engine and PyTorch side by side on the same model, data, batch and threads,
and print tokens/s of each, their ratio and the MFU of both. Called by bench/run.sh.

Each round runs both (alternating which goes first) for the same number of steps after the same
warm-up, each in its own process. The summary takes the median over rounds, because the machine
is shared and single runs are noisy.

MFU (model FLOPs utilisation) counts the FLOPs of a training step as nanoGPT's `estimate_mfu`
(PaLM paper, appendix B): 6 N + 12 L H Q T per token, N the parameters without the position
embedding, L layers, H heads, Q head size, T context. It is given against two peaks, both
measured on the same threads right after the rounds:
* fp32 peak: every thread running 16 independent chains of AVX-512 FMAs (`bench_train --peak`),
  i.e. cores x the clock they really run at x 64 FLOPs per cycle (two 16-lane FMA pipes).
  The `cpu MHz` of /proc/cpuinfo (a VM's nominal clock) is printed for comparison: it
  underestimates the boost clock, so a peak computed from it would be too low;
* best gemm: the faster of the `gemm` crate's and PyTorch's (MKL's) 1024x1024x1024 fp32
  matmul, what a well-tuned library reaches on this machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# The `small` preset: L, H, C (= H Q), T, batch, parameters (crates/trainer/src/config.rs).
N_LAYER, N_HEAD, N_EMBD, BLOCK, BATCH, PARAMS = 4, 4, 128, 128, 16, 842_496
FLOPS_PER_TOKEN = 6 * (PARAMS - BLOCK * N_EMBD) + 12 * N_LAYER * N_EMBD * BLOCK


def cpu_mhz():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                return float(line.split(":")[1])
    return float("nan")


def rust_peaks(rust, threads, tries=3):
    """Best of `tries` runs of `bench_train --peak`: other processes can only lower a peak."""
    fma, gemm = 0.0, 0.0
    for _ in range(tries):
        out = subprocess.run([rust, "--peak", "--threads", str(threads)], capture_output=True, text=True, check=True)
        peaks = json.loads(out.stdout.strip().splitlines()[-1])
        fma, gemm = max(fma, peaks["fma_gflops"]), max(gemm, peaks["gemm_gflops"])
    return fma, gemm


def torch_gemm_gflops(python, threads):
    code = (
        "import torch, time\n"
        f"torch.set_num_threads({threads})\n"
        "a = torch.randn(1024, 1024); b = torch.randn(1024, 1024)\n"
        "for _ in range(3): a @ b\n"
        "best = 0.0\n"
        "for _ in range(5):\n"
        "    t = time.perf_counter()\n"
        "    for _ in range(10): a @ b\n"
        "    best = max(best, 10 * 2 * 1024**3 / (time.perf_counter() - t))\n"
        "print(best / 1e9)\n"
    )
    out = subprocess.run([python, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run_json(cmd, env):
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rust", required=True, help="the bench_train example binary")
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--data", required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    common = ["--threads", str(args.threads), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    rust_cmd = [args.rust, args.data, "--preset", "small", "--json", *common]
    torch_cmd = [args.python, "-W", "ignore", os.path.join(os.path.dirname(__file__), "torch_train.py"), args.data, *common]

    print(f"small preset: {N_LAYER} layers, {N_HEAD} heads, width {N_EMBD}, context {BLOCK}, batch {BATCH}, "
          f"{BATCH * BLOCK} tokens/step, fp32; {args.threads} threads; {args.warmup} warm-up + {args.steps} timed steps "
          f"per run; {args.rounds} rounds")
    rust, torch_ = [], []
    print(f"{'round':>5}  {'trainconsole tok/s':>18}  {'PyTorch tok/s':>13}  {'ratio':>6}")
    for r in range(args.rounds):
        order = [("rust", rust_cmd), ("torch", torch_cmd)]
        if r % 2:
            order.reverse()
        got = {name: run_json(cmd, env) for name, cmd in order}
        rust.append(got["rust"]["tokens_per_sec"])
        torch_.append(got["torch"]["tokens_per_sec"])
        torch_version = got["torch"]["impl"]
        print(f"{r + 1:>5}  {rust[-1]:>18,.0f}  {torch_[-1]:>13,.0f}  {rust[-1] / torch_[-1]:>5.2f}x", flush=True)

    mhz = cpu_mhz()
    fma_peak, rust_gemm = rust_peaks(args.rust, args.threads)
    torch_gemm = torch_gemm_gflops(args.python, args.threads)
    best_gemm = max(rust_gemm, torch_gemm)
    clock_ghz = fma_peak / args.threads / 64
    r_med, t_med = statistics.median(rust), statistics.median(torch_)
    ratios = [a / b for a, b in zip(rust, torch_)]

    def mfu(tps, peak):
        return 100 * tps * FLOPS_PER_TOKEN / 1e9 / peak

    print()
    print(f"FLOPs per token {FLOPS_PER_TOKEN:,} (6N + 12LHQT). Peaks on {args.threads} threads: fp32 FMA "
          f"{fma_peak:.0f} GFLOP/s (= {args.threads} x 64 FLOPs/cycle x {clock_ghz:.2f} GHz; /proc/cpuinfo says "
          f"{mhz / 1e3:.2f} GHz); 1024^3 matmul: gemm crate {rust_gemm:.0f}, {torch_version} {torch_gemm:.0f} GFLOP/s")
    print()
    print("| trainer | tokens/s (median) | range | ratio | MFU (fp32 peak) | MFU (best gemm) |")
    print("|---|---|---|---|---|---|")
    print(f"| trainconsole engine | {r_med:,.0f} | {min(rust):,.0f}–{max(rust):,.0f} | "
          f"{statistics.median(ratios):.2f}x | {mfu(r_med, fma_peak):.1f}% | {mfu(r_med, best_gemm):.1f}% |")
    print(f"| PyTorch eager ({torch_version}) | {t_med:,.0f} | {min(torch_):,.0f}–{max(torch_):,.0f} | 1.00x | "
          f"{mfu(t_med, fma_peak):.1f}% | {mfu(t_med, best_gemm):.1f}% |")
    print()
    print(f"ratio trainconsole / PyTorch: median of rounds {statistics.median(ratios):.2f}x "
          f"(rounds {min(ratios):.2f}x–{max(ratios):.2f}x)")


if __name__ == "__main__":
    main()
