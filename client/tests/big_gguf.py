"""Writes a llama-shaped GGUF of about TOTAL bytes with the real `gguf` writer: llama metadata, a
vocabulary, a pseudo-random F16 embedding tensor (so the first fetch is not all zeros), then
zero-filled tensors up to TOTAL.

Usage: big_gguf.py PATH TOTAL [test|bench]

Shapes: `test` (client/tests/it/inspect.rs: 4 blocks, a 32k-token vocabulary with scores, a
16 MiB embedding) and `bench` (bench/inspect_remote.sh: 32 blocks, a 150,000-token vocabulary
with 100,000 merges, a 64 MiB embedding).
"""
import sys

import gguf
import numpy as np

SHAPES = {
    "test": dict(name="zest remote test", blocks=4, ffn=11008, vocab=32000,
                 tokenizer="llama", scores=True, merges=0, embd_rows=2048,
                 reserve=2 << 20, max_rows=8192),
    "bench": dict(name="zest remote bench", blocks=32, ffn=14336, vocab=150000,
                  tokenizer="gpt2", scores=False, merges=100000, embd_rows=8192,
                  reserve=8 << 20, max_rows=16384),
}

path, total = sys.argv[1], int(sys.argv[2])
s = SHAPES[sys.argv[3] if len(sys.argv) > 3 else "test"]
w = gguf.GGUFWriter(path, "llama")
w.add_name(s["name"])
w.add_context_length(8192)
w.add_embedding_length(4096)
w.add_block_count(s["blocks"])
w.add_feed_forward_length(s["ffn"])
w.add_head_count(32)
w.add_head_count_kv(8)
w.add_rope_freq_base(500000.0)
w.add_rope_dimension_count(128)
w.add_file_type(1)
tokens = [f"token{i}" for i in range(s["vocab"])]
w.add_tokenizer_model(s["tokenizer"])
w.add_token_list(tokens)
if s["scores"]:
    w.add_token_scores([float(-i) for i in range(len(tokens))])
w.add_token_types([1] * len(tokens))
if s["merges"]:
    w.add_token_merges([f"t{i} k{i}" for i in range(s["merges"])])
rng = np.random.default_rng(1)
w.add_tensor("token_embd.weight", rng.standard_normal((s["embd_rows"], 4096)).astype(np.float16))
left = total - s["embd_rows"] * 4096 * 2 - s["reserve"]
i = 0
while left > 0:
    rows = min(left // (4096 * 2), s["max_rows"])
    if rows == 0:
        break
    w.add_tensor(f"blk.{i}.ffn.weight", np.zeros((rows, 4096), dtype=np.float16))
    left -= rows * 4096 * 2
    i += 1
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
