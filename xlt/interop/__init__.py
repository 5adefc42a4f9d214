"""Checkpoint interop with Hugging Face (GPT-2/PolyLM, Llama, T5 v1.1/mT5)."""
