"""Hugging Face transformers: `Trainer(..., optimizers=(opt, lrcycle.scheduler(opt, "fit_one_cycle", ...)))` sets
the lrs `learn.preview` gives, and the range test runs on the same tiny random-weight model and collator with
an exact restore. Nothing is downloaded: the model is built from a config."""

import pytest
import torch
from torch.utils.data import DataLoader

transformers = pytest.importorskip("transformers", reason="needs transformers (pip install -e '.[hf]')")
pytest.importorskip("accelerate", reason="the transformers Trainer needs accelerate (pip install -e '.[hf]')")

import lrcycle  # noqa: E402
from lrcycle import DataLoaders, Learner  # noqa: E402
from lrcycle.integrations.hf import hf_range_test  # noqa: E402

pytestmark = [
    pytest.mark.filterwarnings("ignore::lrcycle.finder.suggest.SuggestionWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

BS, N, SEQ = 8, 48, 6  # 6 batches an epoch


def tiny_model(seed=0):
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=32,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=2,
    )
    return transformers.BertForSequenceClassification(config)


def dataset(seed=0):
    """Token sequences labelled by whether token 3 occurs: a list of dicts, as a tokenized dataset is."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 32, (N, SEQ), generator=g)
    ids[::2, 2] = 3
    return [
        {"input_ids": row, "attention_mask": torch.ones(SEQ, dtype=torch.long), "labels": int(3 in row)} for row in ids
    ]


class LrTrace(transformers.TrainerCallback):
    def __init__(self):
        self.lrs, self.moms = [], []

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.lrs.append([g["lr"] for g in optimizer.param_groups])
        self.moms.append(optimizer.param_groups[-1]["betas"][0])


@pytest.mark.slow  # importing the Trainer (with accelerate) takes ~10 s on a loaded CI machine; training 0.3 s
def test_trainer_with_lrcycle_scheduler_sets_the_fit_forms_lrs(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = lrcycle.scheduler(opt, "fit_one_cycle", 2, 5e-3, steps_per_epoch=N // BS)
    trace = LrTrace()
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=BS,
        num_train_epochs=2,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = transformers.Trainer(
        model=model,
        args=args,
        train_dataset=dataset(),
        data_collator=transformers.default_data_collator,
        optimizers=(opt, sched),
        callbacks=[trace],
    )
    trainer.train()
    # the plan the Learner would run, on a stand-in of the same shape: one group, N // BS steps an epoch
    batches = [(torch.zeros(1), torch.zeros(1))] * (N // BS)
    learn = Learner(DataLoaders(batches), torch.nn.Linear(1, 1), torch.nn.MSELoss(), opt_func=torch.optim.AdamW)
    expected = learn.preview("fit_one_cycle", 2, 5e-3)
    assert [lrs[0] for lrs in trace.lrs] == expected["lr"].tolist()
    assert trace.moms == expected["mom"].tolist()


def bits(t):
    return t.detach().contiguous().reshape(-1).view(torch.uint8).clone()


def test_range_test_on_the_same_model_and_collator_restores_exactly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(dataset(), batch_size=BS, shuffle=True, collate_fn=transformers.default_data_collator)
    before = {k: bits(v) for k, v in model.state_dict().items()}
    torch.manual_seed(1)
    rng = torch.get_rng_state()
    result = hf_range_test(model, loader, opt, num_it=20, end_lr=1.0)
    assert len(result.lrs) >= 5 and result.lrs[0] == 1e-7 and all(loss == loss for loss in result.losses[:5])
    assert all(torch.equal(bits(v), before[k]) for k, v in model.state_dict().items())
    assert opt.state == {} and opt.param_groups[0]["lr"] == 1e-3
    assert torch.equal(torch.get_rng_state(), rng) and list(tmp_path.iterdir()) == []

    # the same losses as the model's own loss in a plain loop at the sweep's lrs
    torch.set_rng_state(rng)
    losses = []
    for i, batch in enumerate(loader):
        if i == 5:
            break
        opt.param_groups[0]["lr"] = 1e-7 * (1.0 / 1e-7) ** (i / 19)
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert result.losses[:5] == losses


def test_range_test_takes_the_collators_dict_batches_directly():
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(dataset(), batch_size=BS, shuffle=True, collate_fn=transformers.default_data_collator)
    result = lrcycle.range_test(model, opt, None, loader, num_it=20, end_lr=1.0)
    assert len(result.lrs) >= 5
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # put back exactly
