"""Models: where they come from (embedded, folders, the hub cache, GGUF files) and loading them."""
