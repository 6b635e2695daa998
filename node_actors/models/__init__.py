"""Model code: checkpoint loading, text encoders, LoRA, and the worker's model cache."""

import os

# Model code must never reach the network: weights and configs come from the model folders.
# huggingface_hub (under diffusers and transformers) reads these when it is first imported,
# which is always after this package (every module that imports them lives in it).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
