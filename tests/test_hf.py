"""A real Hugging Face model (tiny BertForSequenceClassification, random weights, nothing downloaded) on dict
batches: lr_find restores it bitwise, fit_one_cycle trains it, accuracy reads its logits."""

import importlib.util
from pathlib import Path

import pytest
import torch
from test_lr_find import assert_same, capture

from lrcycle import DataLoaders, Learner, accuracy

transformers = pytest.importorskip("transformers", reason="the Hugging Face test needs `pip install lrcycle[hf]`")
pytestmark = pytest.mark.slow  # importing transformers alone takes seconds

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hf_text_classification.py"


def load_example():
    spec = importlib.util.spec_from_file_location("hf_text_classification", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, num_labels=3)  # fmt: skip
    return transformers.BertForSequenceClassification(config)


def dict_batches(n, bs=16, seq=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 100, (n, seq), generator=g)
    mask = torch.ones(n, seq, dtype=torch.long)
    mask[n // 2 :, seq // 2 :] = 0  # some padding
    labels = ids[:, 0] % 3
    return [
        {"input_ids": ids[i : i + bs], "attention_mask": mask[i : i + bs], "labels": labels[i : i + bs]}
        for i in range(0, n, bs)
    ]


def test_bert_on_dict_batches_lr_find_restores_bitwise_and_fit_one_cycle_trains():
    train, valid = dict_batches(128), dict_batches(48, seed=1)
    learn = Learner(DataLoaders(train, valid), tiny_bert(), opt_func=torch.optim.AdamW, metrics=[accuracy],
                    progress=False, device="cpu")  # fmt: skip
    learn.fit(1e-4, 1)  # an optimizer with state, so the restore has something to restore
    before = capture(learn)
    result = learn.lr_find(start_lr=1e-6, end_lr=1, num_it=20)
    assert len(result.losses) >= 2
    assert_same(before, capture(learn))

    learn.fit_one_cycle(3, 3e-3)
    losses = learn.recorder.losses
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8  # it learned

    # accuracy on dict batches: the logits of the model's output against the batches' labels
    learn.model.eval()
    with torch.no_grad():
        logits = torch.cat([learn.model(**b).logits for b in valid])
    labels = torch.cat([b["labels"] for b in valid])
    valid_loss, acc = learn.validate()
    assert acc == pytest.approx((logits.argmax(1) == labels).float().mean().item(), abs=1e-6)
    preds, targets = learn.get_preds()
    assert torch.equal(targets, labels) and torch.allclose(preds, logits, atol=1e-6)


def test_the_example_fine_tunes_a_tiny_bert_well_above_chance(capsys):
    results = load_example().main(epochs=4)
    assert results["accuracy"] > 0.8  # two balanced-ish classes: chance is about 0.5
    assert f"{results['accuracy']:.3f}" in capsys.readouterr().out
