"""The hf-lora reference substrate: LoRA post-training of a Hugging Face model (TRL, peft), vLLM evaluation.

``build.build_substrate`` materializes it (template + data + model); ``package.package_adapter`` zips an adapter
for submission; ``csvdata`` reads the challenge's CSV format; ``model`` resolves and converts base models.
See docs/hf-lora.md.
"""
