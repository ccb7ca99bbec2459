// Minimal hand-written protobuf encoder for a one-node ONNX MatMul model (opset 13, IR version 8).

/** A dimension: a fixed size, or a symbolic name (dynamic). */
export type Dim = number | string;

class Writer {
  private readonly bytes: number[] = [];

  private varint(v: number): void {
    // v is a non-negative integer below 2^53; split into 7-bit groups without 32-bit truncation.
    let x = v;
    while (x >= 0x80) {
      this.bytes.push((x % 0x80) | 0x80);
      x = Math.floor(x / 0x80);
    }
    this.bytes.push(x);
  }

  private tag(field: number, wire: 0 | 2): void {
    this.varint(field * 8 + wire);
  }

  int(field: number, v: number): this {
    this.tag(field, 0);
    this.varint(v);
    return this;
  }

  bytesField(field: number, data: Uint8Array | number[]): this {
    this.tag(field, 2);
    this.varint(data.length);
    for (const b of data) this.bytes.push(b);
    return this;
  }

  str(field: number, s: string): this {
    return this.bytesField(field, new TextEncoder().encode(s));
  }

  msg(field: number, inner: Writer): this {
    return this.bytesField(field, inner.bytes);
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.bytes);
  }
}

const FLOAT = 1; // TensorProto.DataType.FLOAT

/** ValueInfoProto { name = 1, type = 2 { tensor_type = 1 { elem_type = 1, shape = 2 { dim = 1 { value = 1 | param = 2 } } } } } */
function valueInfo(name: string, dims: readonly Dim[]): Writer {
  const shape = new Writer();
  for (const d of dims) shape.msg(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().str(2, d));
  const tensor = new Writer().int(1, FLOAT).msg(2, shape);
  return new Writer().str(1, name).msg(2, new Writer().msg(1, tensor));
}

/**
 * Y (M, N) = A (M, K) · B (K, N) as an ONNX ModelProto. Inputs "A" and "B", output "Y".
 * Any dimension may be a string to make it symbolic (e.g. 'M' for a per-expert row count).
 */
export function matmulModel(M: Dim, K: Dim, N: Dim): Uint8Array {
  // NodeProto { input = 1, output = 2, name = 3, op_type = 4 }
  const node = new Writer().str(1, 'A').str(1, 'B').str(2, 'Y').str(3, 'matmul').str(4, 'MatMul');
  // GraphProto { node = 1, name = 2, input = 11, output = 12 }
  const graph = new Writer()
    .msg(1, node)
    .str(2, 'gemm')
    .msg(11, valueInfo('A', [M, K]))
    .msg(11, valueInfo('B', [K, N]))
    .msg(12, valueInfo('Y', [M, N]));
  // ModelProto { ir_version = 1, producer_name = 2, graph = 7, opset_import = 8 { domain = 1, version = 2 } }
  return new Writer()
    .int(1, 8)
    .str(2, 'moekit-bench')
    .msg(7, graph)
    .msg(8, new Writer().str(1, '').int(2, 13))
    .finish();
}
