#!/usr/bin/env python3
"""The trainconsole client inside a PyTorch training loop (a character-level MLP language
model on any text file). Not run in CI: it needs PyTorch (`pip install torch`).

    trainconsole run -- python3 examples/python/train_torch.py --data input.txt
    # or, with a console already running (trainconsole serve):
    python3 examples/python/train_torch.py --data input.txt

The loop is an ordinary PyTorch loop; the lines marked `# console` are all it takes to
watch it live and stop it from the page with a checkpoint.
"""

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainconsole_client import Run  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="UTF-8 text file")
    parser.add_argument("--context", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--grad-accum", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=5_000_000)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default="torch-checkpoints")
    args = parser.parse_args()

    text = open(args.data, encoding="utf-8").read()
    vocab = sorted(set(text))
    data = torch.tensor([vocab.index(c) for c in text], dtype=torch.long)
    split = int(0.9 * len(data))
    train_data, val_data = data[:split], data[split:]
    model = torch.nn.Sequential(
        torch.nn.Embedding(len(vocab), 64),
        torch.nn.Flatten(),
        torch.nn.Linear(64 * args.context, 256),
        torch.nn.GELU(),
        torch.nn.Linear(256, len(vocab)),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    tokens_per_step = args.batch_size * args.context * args.grad_accum
    total_steps = args.max_tokens // tokens_per_step

    run = Run(  # console
        name=f"torch char-MLP on {os.path.basename(args.data)}",
        total_tokens=total_steps * tokens_per_step,
        total_steps=total_steps,
        grad_accum=args.grad_accum,
        config={k: v for k, v in vars(args).items()},
    )

    def batch(source):
        ix = torch.randint(len(source) - args.context - 1, (args.batch_size,))
        x = torch.stack([source[i:i + args.context] for i in ix])
        y = source[ix + args.context]
        return x, y

    for step in range(1, total_steps + 1):
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for _ in range(args.grad_accum):
            x, y = batch(train_data)
            loss = F.cross_entropy(model(x), y) / args.grad_accum
            loss.backward()
            loss_sum += loss.item()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        tokens = step * tokens_per_step
        run.log(step=step, tokens=tokens, loss=loss_sum, lr=args.lr, grad_norm=grad_norm.item(),  # console
                step_time_ms=(time.perf_counter() - started) * 1000)
        if step % 100 == 0:
            with torch.no_grad():
                x, y = batch(val_data)
                run.eval(step=step, val_loss=F.cross_entropy(model(x), y).item())  # console
        if run.should_stop() or step == total_steps:  # console: Abort on the page, or Ctrl-C
            os.makedirs(args.out, exist_ok=True)
            path = os.path.join(args.out, f"step-{step:06d}.pt")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step}, path)
            run.checkpoint(step=step, tokens=tokens, path=path)  # console
            run.finish("aborted" if step < total_steps else "completed")  # console
            break


if __name__ == "__main__":
    main()
