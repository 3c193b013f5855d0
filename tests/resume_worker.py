"""Fresh-process half of tests/test_resume.py: `python resume_worker.py ROOT FORM MIXED_PRECISION` resumes the
reference fit in ROOT after every epoch it left a checkpoint for with `learn.resume` (and after epoch 2 with the
same fit call and `resume=`), and saves each final state to
`ROOT/final_<k>_<how>.pt` for the test process to compare with the uninterrupted fit."""

import sys
from pathlib import Path

import torch

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parent))

import resume_cases  # noqa: E402

if __name__ == "__main__":
    root, form, mixed_precision = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
    for k in resume_cases.resume_points(root):
        for how in ("resume", "same_call") if k == 2 else ("resume",):
            learn, cbs = resume_cases.resume_at(root, form, k, how, mixed_precision)
            torch.save(resume_cases.final_state(learn, cbs), root / f"final_{k}_{how}.pt")
