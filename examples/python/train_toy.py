#!/usr/bin/env python3
"""A small trainer in plain Python that reports to trainconsole and honours Abort.

It fits a linear model y = w·x + b to noisy samples of y = 3x + 2 with minibatch SGD, and
counts each sample as 16 "tokens" so that the console's token counter, tokens/s and ETA
have something to show. Standard library only.

    trainconsole run -- python3 examples/python/train_toy.py          # a console of its own
    trainconsole serve & python3 examples/python/train_toy.py          # over HTTP

When the console asks it to stop (or on Ctrl-C) it finishes its step, writes a checkpoint
(a JSON file with the weights, step and tokens), reports it, reports ``state: aborted``
and exits with status 0.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainconsole_client import Run  # noqa: E402

TOKENS_PER_SAMPLE = 16


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps of the run")
    parser.add_argument("--batch-size", type=int, default=32, help="samples per step")
    parser.add_argument("--lr", type=float, default=0.05, help="SGD learning rate")
    parser.add_argument("--step-secs", type=float, default=0.02, help="extra time each step takes, to look like real work")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between validation losses")
    parser.add_argument("--checkpoint-dir", default=os.path.join(tempfile.gettempdir(), "train_toy"),
                        help="where checkpoints are written")
    parser.add_argument("--name", default="toy linear regression")
    parser.add_argument("--seed", type=int, default=1337)
    args = parser.parse_args()

    tokens_per_step = args.batch_size * TOKENS_PER_SAMPLE
    run = Run(
        name=args.name,
        total_tokens=args.steps * tokens_per_step,
        total_steps=args.steps,
        config={"model": "y = w*x + b", "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed},
    )
    rng = random.Random(args.seed)
    val = [sample(rng) for _ in range(256)]
    w, b = 0.0, 0.0
    step = 0
    print(f"train_toy: {args.steps} steps of {args.batch_size} samples, checkpoints in {args.checkpoint_dir}")
    while step < args.steps:
        started = time.perf_counter()
        batch = [sample(rng) for _ in range(args.batch_size)]
        loss, grad_w, grad_b = mse_and_grads(w, b, batch)
        w -= args.lr * grad_w
        b -= args.lr * grad_b
        time.sleep(args.step_secs)
        step += 1
        tokens = step * tokens_per_step
        run.log(step=step, tokens=tokens, loss=loss, lr=args.lr, grad_norm=(grad_w ** 2 + grad_b ** 2) ** 0.5,
                step_time_ms=(time.perf_counter() - started) * 1000)
        if step % args.eval_every == 0:
            val_loss = mse_and_grads(w, b, val)[0]
            run.eval(step=step, val_loss=val_loss)
            print(f"step {step}: loss {loss:.4f}, val loss {val_loss:.4f}, w {w:.3f}, b {b:.3f}")
        if run.should_stop():
            path = save_checkpoint(args.checkpoint_dir, step, tokens, w, b)
            run.checkpoint(step=step, tokens=tokens, path=path)
            run.finish("aborted")
            print(f"train_toy: aborted at step {step}; checkpoint {path}")
            return 0
    path = save_checkpoint(args.checkpoint_dir, step, step * tokens_per_step, w, b)
    run.checkpoint(step=step, tokens=step * tokens_per_step, path=path)
    run.finish("completed")
    print(f"train_toy: completed {step} steps; w {w:.3f}, b {b:.3f}; checkpoint {path}")
    return 0


def sample(rng):
    x = rng.uniform(-1.0, 1.0)
    return x, 3.0 * x + 2.0 + rng.gauss(0.0, 0.1)


def mse_and_grads(w, b, batch):
    """Mean squared error of y = w*x + b over the batch, and its gradient in (w, b)."""
    n = len(batch)
    loss = grad_w = grad_b = 0.0
    for x, y in batch:
        err = w * x + b - y
        loss += err * err
        grad_w += 2.0 * err * x
        grad_b += 2.0 * err
    return loss / n, grad_w / n, grad_b / n


def save_checkpoint(directory, step, tokens, w, b):
    """Write the checkpoint atomically (write, then rename); return its path."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"step-{step:06d}.json")
    partial = path + ".partial"
    with open(partial, "w") as f:
        json.dump({"step": step, "tokens": tokens, "w": w, "b": b}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(partial, path)
    return path


if __name__ == "__main__":
    sys.exit(main())
