"""What the project knows: fairseq <-> HF tensor names and load-time rules, configs, tokenizers."""
