"""The char-LM task's LightningModule (module.py) and its networks, recurrent and GPT (nets.py).

The names below keep `lightning_modules.charlm.<name>`, which configs and checkpoints use, working.
"""

from lightning_modules.charlm.module import (
    CharLMModule,
    bits_per_character,
    check_sampling,
    plain_step,
    stream_bpc,
    warmup_cosine_decay,
)
from lightning_modules.charlm.nets import GPT, CharRNN

__all__ = [
    "GPT",
    "CharLMModule",
    "CharRNN",
    "bits_per_character",
    "check_sampling",
    "plain_step",
    "stream_bpc",
    "warmup_cosine_decay",
]
