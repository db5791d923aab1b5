"""Attention of a run: extraction (one forward pass), views of it, rollout, flow, head statistics."""
