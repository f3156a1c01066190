#!/usr/bin/env python3
"""Writes test/golden/safetensors/reference.safetensors with the reference `safetensors` writer.

io_test reads the committed output and checks every value, so tensortape's reader is tested
against files the reference implementation produced. Python is only needed to regenerate it:

    python3 -m venv /tmp/st && /tmp/st/bin/pip install safetensors numpy
    /tmp/st/bin/python tools/make_safetensors_golden.py

The values must stay in sync with the GoldenFromReferenceWriter test in test/io_test.cpp.
"""
import os

import numpy as np
import safetensors
from safetensors import TensorSpec, serialize_file

OUT = os.path.join(os.path.dirname(__file__), "..", "test", "golden", "safetensors", "reference.safetensors")

arrays = {
    "f32": np.array([[1.0, -2.5, 0.1], [3.4028235e38, -0.0, 1e-45]], dtype=np.float32),
    "f64": np.array([1.0 / 3.0, -1e300, 5e-324], dtype=np.float64),
    "f16": np.array([1.0, -2.0, 65504.0, 2.0**-24, 2.0**-14, np.inf], dtype=np.float16),
    # bfloat16 has no numpy dtype: raw bit patterns, written with dtype "bfloat16" below.
    # 1.0, -2.0, smallest subnormal 2^-133, largest finite, -inf
    "bf16": np.array([0x3F80, 0xC000, 0x0001, 0x7F7F, 0xFF80], dtype=np.uint16),
    "i64": np.array([-(2**63), 2**63 - 1, 0, -1], dtype=np.int64),
    "i32": np.array([[-(2**31), 2**31 - 1], [7, -7]], dtype=np.int32),
    "i16": np.array([-32768, 32767, 5], dtype=np.int16),
    "u16": np.array([0, 65535], dtype=np.uint16),
    "i8": np.array([-128, 127, -1], dtype=np.int8),
    "u8": np.array([0, 255, 17], dtype=np.uint8),
    "u32": np.array([4294967295, 1], dtype=np.uint32),
    "u64": np.array([9223372036854775807, 3], dtype=np.uint64),
    "bool": np.array([True, False, True], dtype=bool),
    "scalar": np.array(42.0, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
}

specs = {}
for name, a in arrays.items():
    a = a.astype(a.dtype.newbyteorder("<"), order="C")  # keeps 0-d arrays 0-d
    arrays[name] = a  # keep alive while serialize_file reads the pointers
    specs[name] = TensorSpec(
        dtype="bfloat16" if name == "bf16" else a.dtype.name,
        shape=a.shape,
        data_ptr=a.ctypes.data,
        data_len=a.nbytes,
    )

serialize_file(specs, OUT, metadata={"format": "np", "writer": "safetensors " + safetensors.__version__})
print("wrote", os.path.normpath(OUT), os.path.getsize(OUT), "bytes")
