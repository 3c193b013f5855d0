"""A Hugging Face model trained by lrcycle on dict batches, on CPU in seconds, nothing downloaded.

A small generated sentiment task: each "sentence" is a sequence of word ids, some neutral, some positive,
some negative, padded to a fixed length with an attention mask; the label is whether positive words
outnumber negative ones. The model is `transformers.BertForSequenceClassification` built from a tiny
`BertConfig` with random weights. The batches are dicts `{"input_ids", "attention_mask", "labels"}`, so the
Learner calls `model(**batch)` and trains on the loss the model returns; `accuracy` reads its `logits`.
The range test picks the lr, `fit_one_cycle` trains with bfloat16 autocast and gradient clipping, and
`torch.compile` is shown last (optional: `--compile`, it takes a minute to compile on CPU).

    pip install "lrcycle[hf]"
    python examples/hf_text_classification.py [--compile]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.data import DataLoader

from lrcycle import DataLoaders, GradientClip, Learner, accuracy

VOCAB, PAD, SEQ_LEN = 64, 0, 16
POSITIVE, NEGATIVE = range(1, 9), range(9, 17)  # word ids; the rest (17..63) are neutral


def make_sentences(n: int, seed: int) -> dict[str, torch.Tensor]:
    """`n` padded sentences of 6-16 words with their attention masks and labels (more positive than negative)."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(6, SEQ_LEN + 1, (n,), generator=g)
    ids = torch.randint(17, VOCAB, (n, SEQ_LEN), generator=g)
    sentiment = torch.randint(1, 17, (n, SEQ_LEN), generator=g)
    ids = torch.where(torch.rand(n, SEQ_LEN, generator=g) < 0.3, sentiment, ids)
    mask = (torch.arange(SEQ_LEN)[None] < lengths[:, None]).long()
    ids = ids * mask  # PAD beyond each sentence's length
    positive = ((ids >= POSITIVE.start) & (ids < POSITIVE.stop)).sum(1)
    negative = ((ids >= NEGATIVE.start) & (ids < NEGATIVE.stop)).sum(1)
    labels = (positive > negative).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


class DictDataset(torch.utils.data.Dataset):
    """Rows of a dict of tensors; the default collate stacks them back into dict batches."""

    def __init__(self, columns: dict[str, torch.Tensor]):
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns["labels"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.columns.items()}


def make_dls(n_train: int = 1024, n_valid: int = 256, bs: int = 32, seed: int = 0) -> DataLoaders:
    train, valid = DictDataset(make_sentences(n_train, seed)), DictDataset(make_sentences(n_valid, seed + 1))
    return DataLoaders(DataLoader(train, batch_size=bs, shuffle=True), DataLoader(valid, batch_size=bs))


def tiny_bert(seed: int = 0):
    """BertForSequenceClassification from a tiny config with random weights (nothing is downloaded)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=SEQ_LEN, num_labels=2)  # fmt: skip
    return BertForSequenceClassification(config)


def main(epochs: int = 4, compile_model: bool = False, seed: int = 0) -> dict:
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    learn = Learner(make_dls(seed=seed), tiny_bert(seed), opt_func=torch.optim.AdamW, metrics=[accuracy],
                    cbs=[GradientClip(1.0)], progress=False, device="cpu").to_bf16()  # fmt: skip
    start = time.perf_counter()
    lr = learn.lr_find(end_lr=1, num_it=60).valley
    print(f"range test: valley at lr={lr:.2e}")
    learn.fit_one_cycle(epochs, lr_max=min(lr * 3, 3e-3))
    print(learn.recorder.epoch_df().to_string(index=False))
    results = {"lr": lr, "accuracy": learn.recorder.epochs[-1]["accuracy"], "seconds": time.perf_counter() - start}
    if compile_model:
        learn.model = torch.compile(learn.model)
        learn.fit_one_cycle(1, lr_max=min(lr, 1e-3))
        results["compiled_accuracy"] = learn.recorder.epochs[-1]["accuracy"]
        print(f"after one compiled epoch: accuracy {results['compiled_accuracy']:.3f}")
    print(f"accuracy {results['accuracy']:.3f} in {results['seconds']:.1f} s")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--compile", action="store_true", help="then one more epoch with torch.compile")
    args = parser.parse_args()
    main(args.epochs, args.compile)
