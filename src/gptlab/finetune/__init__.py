"""`gptlab finetune`: full or LoRA fine-tuning of a checkpoint on labelled JSONL, and FLAN-style
instruction tuning. The output is a normal checkpoint folder (see docs/finetune.md)."""
