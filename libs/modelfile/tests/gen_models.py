#!/usr/bin/env python3
"""Writes GGUF and safetensors test files with the real writers (gguf-py's GGUFWriter, the
safetensors package) and dumps what the real readers (gguf.GGUFReader, safetensors.safe_open plus
the raw JSON header) report for every field and tensor, so the Rust parser can be compared with
them.

Usage: gen_models.py OUT_DIR    (writes OUT_DIR/*.gguf, OUT_DIR/*.safetensors, OUT_DIR/report.json)
"""

import json
import struct
import sys
from pathlib import Path

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V, GGUFEndian
import safetensors
import safetensors.numpy
from safetensors import TensorSpec

RNG = np.random.default_rng(7)


def add_metadata(w: gguf.GGUFWriter, with_vocab: bool = True) -> None:
    w.add_name("zest test model")
    w.add_file_type(15)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 3.14159)
    w.add_uint64("test.u64", 2**64 - 1)
    w.add_int64("test.i64", -(2**63))
    w.add_float64("test.f64", 2.718281828459045)
    w.add_bool("test.bool_true", True)
    w.add_bool("test.bool_false", False)
    w.add_string("test.string", "héllo wörld ✓ \"quoted\"\n")
    w.add_key_value("test.empty_string", "", V.STRING)
    for vt, vals in [
        (V.UINT8, [0, 1, 255]),
        (V.INT8, [-128, 0, 127]),
        (V.UINT16, [0, 65535]),
        (V.INT16, [-32768, 32767]),
        (V.UINT32, [0, 4294967295]),
        (V.INT32, [-5, 6, -7]),
        (V.FLOAT32, [0.5, -1.25, 1e-7]),
        (V.UINT64, [0, 2**64 - 1]),
        (V.INT64, [-(2**63), 2**63 - 1]),
        (V.FLOAT64, [0.1, -2.5e300]),
        (V.BOOL, [True, False, True]),
        (V.STRING, ["a", "", "ünï", "🦀"]),
    ]:
        w.add_key_value(f"test.array_{vt.name.lower()}", vals, V.ARRAY, sub_type=vt)
    w.add_array("test.nested_ints", [[1, 2], [3], [4, 5, 6]])
    w.add_array("test.nested_strings", [["x", "yy"], ["zzz"]])
    w.add_array("test.nested_deep", [[[1], [2, 3]], [[4]]])
    # llama-style hyperparameters
    w.add_context_length(4096)
    w.add_embedding_length(256)
    w.add_block_count(2)
    w.add_feed_forward_length(688)
    w.add_head_count(8)
    w.add_head_count_kv(2)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(32)
    if with_vocab:
        tokens = [f"tok{i}" for i in range(1000)] + ["ü", "▁the", "<s>", "</s>", "🦀"]
        w.add_tokenizer_model("llama")
        w.add_token_list(tokens)
        w.add_token_scores([float(-i) / 4 for i in range(len(tokens))])
        w.add_token_types([1] * len(tokens))


def add_tensors(w: gguf.GGUFWriter) -> None:
    # Plain types from numpy arrays, several shapes (numpy order; the file stores them reversed).
    w.add_tensor("plain.f32_1d", RNG.standard_normal(7).astype(np.float32))
    w.add_tensor("plain.f32_2d", RNG.standard_normal((3, 5)).astype(np.float32))
    w.add_tensor("plain.f32_3d", RNG.standard_normal((2, 3, 4)).astype(np.float32))
    w.add_tensor("plain.f32_4d", RNG.standard_normal((2, 1, 3, 2)).astype(np.float32))
    w.add_tensor("plain.f16", RNG.standard_normal((4, 8)).astype(np.float16))
    w.add_tensor("plain.f64", RNG.standard_normal((3,)).astype(np.float64))
    w.add_tensor("plain.i8", np.arange(5, dtype=np.int8))
    w.add_tensor("plain.i16", np.arange(6, dtype=np.int16).reshape(2, 3))
    w.add_tensor("plain.i32", np.arange(4, dtype=np.int32))
    w.add_tensor("plain.i64", np.arange(3, dtype=np.int64))
    w.add_tensor("plain.empty", np.zeros((0, 4), dtype=np.float32))
    # Every type gguf-py knows, written as raw block bytes: 2 rows of 2 blocks.
    for qt, (block, size) in gguf.GGML_QUANT_SIZES.items():
        raw = RNG.integers(0, 256, size=(2, 2 * size), dtype=np.uint8)
        w.add_tensor(f"raw.{qt.name.lower()}", raw, raw_dtype=qt)
    # A 3-d quantized tensor.
    raw = RNG.integers(0, 256, size=(3, 2, 144), dtype=np.uint8)
    w.add_tensor("raw.q4_k_3d", raw, raw_dtype=Q.Q4_K)


def write_gguf(path: Path, *, endian=GGUFEndian.LITTLE, alignment=None, metadata=True,
               tensors=True, vocab=True) -> None:
    w = gguf.GGUFWriter(path, "llama", endianess=endian)
    if alignment is not None:
        w.add_custom_alignment(alignment)
    if metadata:
        add_metadata(w, with_vocab=vocab)
    if tensors:
        add_tensors(w)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def jsonable(x):
    if isinstance(x, (np.generic,)):
        return x.item()
    if isinstance(x, list):
        return [jsonable(v) for v in x]
    return x


def report_gguf(path: Path) -> dict:
    r = gguf.GGUFReader(path)
    fields = []
    for name, f in r.fields.items():
        if name.startswith("GGUF."):
            continue
        fields.append({
            "name": name,
            "offset": int(f.offset),
            "types": [int(t) for t in f.types],
            "value": jsonable(f.contents()),
        })
    tensors = [{
        "name": t.name,
        "type": int(t.tensor_type),
        "type_name": t.tensor_type.name,
        "shape": [int(d) for d in t.shape],
        "n_elements": int(t.n_elements),
        "n_bytes": int(t.n_bytes),
        "data_offset": int(t.data_offset),
    } for t in r.tensors]
    return {
        "file": path.name,
        "format": "gguf",
        "version": int(r.fields["GGUF.version"].parts[0][0]),
        "big_endian": r.byte_order == "S",
        "alignment": int(r.alignment),
        "data_offset": int(r.data_offset),
        "file_len": path.stat().st_size,
        "fields": fields,
        "tensors": tensors,
    }


def write_safetensors_numpy(path: Path) -> None:
    tensors = {
        "f64": RNG.standard_normal((2, 3)),
        "f32": RNG.standard_normal((4,)).astype(np.float32),
        "f16": RNG.standard_normal((2, 2, 2)).astype(np.float16),
        "i64": np.arange(3, dtype=np.int64),
        "i32": np.arange(6, dtype=np.int32).reshape(3, 2),
        "i16": np.arange(2, dtype=np.int16),
        "i8": np.arange(5, dtype=np.int8),
        "u8": np.arange(7, dtype=np.uint8),
        "u16": np.arange(3, dtype=np.uint16),
        "u32": np.arange(3, dtype=np.uint32),
        "u64": np.arange(3, dtype=np.uint64),
        "bool": np.array([True, False, True]),
        "c64": np.array([1 + 2j, 3 - 4j], dtype=np.complex64),
        "scalar": np.array(1.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "model.layers.0.weight": RNG.standard_normal((8, 4)).astype(np.float32),
    }
    meta = {"format": "np", "architecture": "test-arch", "note": "ünïcode \"quoted\"\\n",
            "context_length": "2048"}
    safetensors.numpy.save_file(tensors, str(path), metadata=meta)


def write_safetensors_spec(path: Path, metadata) -> None:
    """Dtypes numpy lacks, through the TensorSpec API (raw bytes + logical shape)."""
    keep = []
    specs = {}
    for name, dtype, shape, nbytes in [
        ("bf16", "bfloat16", [3, 4], 24),
        ("f8_e4m3", "float8_e4m3fn", [5], 5),
        ("f8_e5m2", "float8_e5m2", [2, 2], 4),
        ("f8_e4m3fnuz", "float8_e4m3fnuz", [3], 3),
        ("f8_e5m2fnuz", "float8_e5m2fnuz", [3], 3),
        ("f8_e8m0", "float8_e8m0fnu", [4], 4),
        ("f4", "float4_e2m1fn_x2", [2, 3], 6),  # storage shape; logical [2, 6]
        ("c64", "complex64", [2], 16),
    ]:
        buf = RNG.integers(0, 256, size=nbytes, dtype=np.uint8)
        keep.append(buf)
        specs[name] = TensorSpec(dtype=dtype, shape=shape, data_ptr=int(buf.ctypes.data),
                                 data_len=nbytes)
    safetensors.serialize_file(specs, str(path), metadata=metadata)
    del keep


def report_safetensors(path: Path) -> dict:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    tensors = []
    with safetensors.safe_open(str(path), framework="numpy") as f:
        metadata = f.metadata()
        for name in f.keys():
            sl = f.get_slice(name)
            entry = header[name]
            tensors.append({
                "name": name,
                "dtype": entry["dtype"],
                "shape": entry["shape"],
                "data_offsets": entry["data_offsets"],
                "slice_shape": list(sl.get_shape()),
                "slice_dtype": sl.get_dtype(),
            })
    return {
        "file": path.name,
        "format": "safetensors",
        "json_len": n,
        "file_len": len(raw),
        "metadata": metadata,
        "tensors": tensors,
    }


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    files = []

    p = out / "all_types.gguf"
    write_gguf(p)
    files.append(report_gguf(p))

    # Version 2 has the same layout on little-endian files: the writer only makes v3.
    v2 = out / "all_types_v2.gguf"
    data = bytearray(p.read_bytes())
    data[4:8] = struct.pack("<I", 2)
    v2.write_bytes(bytes(data))
    files.append(report_gguf(v2))

    p = out / "big_endian.gguf"
    write_gguf(p, endian=GGUFEndian.BIG, vocab=False)
    files.append(report_gguf(p))

    p = out / "aligned_64.gguf"
    write_gguf(p, alignment=64, vocab=False)
    files.append(report_gguf(p))

    p = out / "metadata_only.gguf"
    write_gguf(p, tensors=False)
    files.append(report_gguf(p))

    p = out / "numpy_types.safetensors"
    write_safetensors_numpy(p)
    files.append(report_safetensors(p))

    p = out / "spec_types.safetensors"
    write_safetensors_spec(p, {"format": "pt"})
    files.append(report_safetensors(p))

    p = out / "no_metadata.safetensors"
    write_safetensors_spec(p, None)
    files.append(report_safetensors(p))

    quant_sizes = {qt.name: [int(qt), bs, ts] for qt, (bs, ts) in gguf.GGML_QUANT_SIZES.items()}
    report = {"quant_sizes": quant_sizes, "files": files}
    (out / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
