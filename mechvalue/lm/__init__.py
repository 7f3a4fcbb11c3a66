"""Language models: offline loading, left-padded batches, greedy decoding and logits with hooks."""
