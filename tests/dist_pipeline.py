"""Run by tests/test_distributed.py, under ``torchrun --nproc_per_node 2`` or alone: the smoke
experiment (:func:`kdkit.pipeline.distill_t5`) without dropout, the arms that use no sampling,
with a micro-batch of ``BATCH`` examples per process, into ``OUT``.

    python tests/dist_pipeline.py OUT BATCH
"""

import sys
from dataclasses import replace

from kdkit import distributed
from kdkit.config import get_preset
from kdkit.pipeline import distill_t5

out, batch = sys.argv[1], int(sys.argv[2])
smoke = get_preset("smoke")
config = replace(
    smoke,
    teacher_size=replace(smoke.teacher_size, dropout_rate=0.0),  # dropout differs per process
    arms=("ce", "word_kd", "seq_kd", "seq_word_kd"),  # on-policy samples differ per process
    teacher_train=replace(smoke.teacher_train, batch_size=batch),
    student_train=replace(smoke.student_train, batch_size=batch),
)
distributed.init_from_env("cpu")
try:
    distill_t5(config, out, progress=False, log=lambda message: None)
finally:
    distributed.shutdown()
