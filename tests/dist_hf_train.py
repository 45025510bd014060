"""A few steps of kdkit.hf's trainer on tiny T5s, for tests/test_hf_trainer.py to run in one
process and under ``torchrun`` (gloo, CPU); rank 0 saves the student's initial and final
weights and the logged ``loss``, ``ce`` and ``kd`` of every step to ``out``.

    python tests/dist_hf_train.py OUT --batch 8
    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_hf_train.py \
        OUT --batch 4

Not a test module (no ``test_`` prefix): pytest does not collect it. Plain SGD with no
clipping, so that the gradient's scale, not only its direction, reaches the weights (Adam and
clipping would hide a loss off by a constant factor).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where rank 0 saves weights and logs (torch.save)")
    parser.add_argument("--batch", type=int, required=True, help="per-process batch size")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--workdir", type=Path, default=None, help="the Trainer's output_dir")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # kdkit without installing it
    import datasets
    from transformers import DataCollatorForSeq2Seq

    from kdkit.data.text_tasks import build_word_tokenizer, make_text_tasks, task_vocabulary_texts
    from kdkit.hf import DistillationArguments, DistillationSeq2SeqTrainer
    from kdkit.t5 import build_t5

    torch.set_num_threads(1)
    tokenizer = build_word_tokenizer(task_vocabulary_texts(("number",)))
    pairs = make_text_tasks(("number",), num_train=48, num_val=0, num_test=0, seed=0).train
    data = datasets.Dataset.from_dict({"source": [s for s, _ in pairs],
                                       "target": [t for _, t in pairs]})
    data = data.map(lambda b: tokenizer(b["source"], text_target=b["target"]), batched=True,
                    remove_columns=["source", "target"])
    size = dict(d_model=16, d_ff=32, num_heads=2, d_kv=8)  # build_t5: dropout_rate=0 already
    torch.manual_seed(0)
    teacher = build_t5(len(tokenizer), **size, num_layers=2, num_decoder_layers=2)
    student = build_t5(len(tokenizer), **size, num_layers=1, num_decoder_layers=1)
    initial = {k: v.clone() for k, v in student.state_dict().items()}
    workdir = args.workdir or args.out.parent / f"{args.out.stem}_run"
    training = DistillationArguments(
        output_dir=str(workdir), max_steps=args.steps, per_device_train_batch_size=args.batch,
        optim="sgd", learning_rate=0.5, max_grad_norm=0.0, temperature=2.0, alpha=0.5,
        save_strategy="no", logging_steps=1, report_to="none", use_cpu=True, seed=0,
        disable_tqdm=True)
    trainer = DistillationSeq2SeqTrainer(
        model=student, teacher=teacher, args=training, train_dataset=data,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=student),
        processing_class=tokenizer)
    trainer.train()
    if trainer.accelerator.is_main_process:
        print(f"processes: {trainer.accelerator.num_processes}")
        logs = [{k: e[k] for k in ("loss", "ce", "kd")} for e in trainer.state.log_history
                if "loss" in e]
        weights = trainer.accelerator.unwrap_model(trainer.model).state_dict()
        torch.save({"initial": initial, "weights": weights, "logs": logs}, args.out)


if __name__ == "__main__":
    main()
