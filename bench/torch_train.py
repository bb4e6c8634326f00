"""The `small` preset's GPT trained in PyTorch eager: the PyTorch half of bench/run.sh.

The model is nanoGPT's (token + position embeddings, pre-LayerNorm blocks with a packed q/k/v
projection and causal scaled-dot-product attention, a 4x exact-GELU MLP, final LayerNorm, head
tied to the token embedding, no dropout), with the trainer's shape and optimizer: AdamW
(beta1 0.9, beta2 0.99, weight decay 0.1 on matrices only, PyTorch's default implementation),
gradient-norm clipping to 1.0, warm-up + cosine learning rate. Batches are random windows of the
same text. Prints one JSON object: tokens/s over --steps steps after --warmup steps.

    python bench/torch_train.py DATA --threads 2 --steps 50 --warmup 5
"""

import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# The `small` preset (crates/trainer/src/config.rs).
SMALL = dict(vocab_size=256, n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16,
             learning_rate=3e-3, min_lr=3e-4, warmup_steps=50, total_steps=977, weight_decay=0.1,
             beta1=0.9, beta2=0.99, grad_clip=1.0)


class Block(nn.Module):
    def __init__(self, c, n_head):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c)
        self.c_attn = nn.Linear(c, 3 * c)
        self.attn_proj = nn.Linear(c, c)
        self.ln_2 = nn.LayerNorm(c)
        self.c_fc = nn.Linear(c, 4 * c)
        self.mlp_proj = nn.Linear(4 * c, c)
        self.n_head = n_head

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).contiguous().view(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        c = cfg["n_embd"]
        self.wte = nn.Embedding(cfg["vocab_size"], c)
        self.wpe = nn.Embedding(cfg["block_size"], c)
        self.h = nn.ModuleList(Block(c, cfg["n_head"]) for _ in range(cfg["n_layer"]))
        self.ln_f = nn.LayerNorm(c)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * cfg["n_layer"]) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)
            elif "ln" not in name:
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        t = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(t))
        for block in self.h:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


def lr_at(cfg, step):
    if step < cfg["warmup_steps"]:
        return cfg["learning_rate"] * (step + 1) / (cfg["warmup_steps"] + 1)
    if step >= cfg["total_steps"]:
        return cfg["min_lr"]
    ratio = (step - cfg["warmup_steps"]) / (cfg["total_steps"] - cfg["warmup_steps"])
    return cfg["min_lr"] + 0.5 * (1 + math.cos(math.pi * ratio)) * (cfg["learning_rate"] - cfg["min_lr"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1337)
    cfg = SMALL
    with open(args.data, "rb") as f:
        text = f.read()
    data = torch.frombuffer(bytearray(text[: len(text) * 9 // 10]), dtype=torch.uint8).long()
    model = GPT(cfg)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg["learning_rate"], betas=(cfg["beta1"], cfg["beta2"]), eps=1e-8)
    b, t = cfg["batch_size"], cfg["block_size"]
    loss = None
    for step in range(args.warmup + args.steps):
        if step == args.warmup:
            started = time.perf_counter()
        starts = torch.randint(len(data) - t - 1, (b,))
        x = torch.stack([data[s:s + t] for s in starts])
        y = torch.stack([data[s + 1:s + t + 1] for s in starts])
        for group in optimizer.param_groups:
            group["lr"] = lr_at(cfg, step)
        loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        optimizer.step()
        loss = loss.item()
    secs = time.perf_counter() - started
    print(json.dumps({
        "impl": f"pytorch-{torch.__version__}",
        "threads": args.threads,
        "steps": args.steps,
        "step_ms": round(secs * 1e3 / args.steps, 3),
        "tokens_per_sec": round(args.steps * b * t / secs, 1),
        "last_loss": round(loss, 4),
    }))


if __name__ == "__main__":
    main()
