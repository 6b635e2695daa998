"""Model code: checkpoint loading, text encoders, LoRA, and the worker's model cache."""
