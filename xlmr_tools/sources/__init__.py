"""Opening a side: a fairseq checkpoint or a Hugging Face folder as a TensorSource."""
