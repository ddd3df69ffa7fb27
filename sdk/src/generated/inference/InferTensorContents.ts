// Original file: protos/grpc_service.proto

import type { Long } from '@grpc/proto-loader';

/**
 * Typed tensor payload; use the list matching the tensor datatype. FP16/BF16
 * have no typed list and must travel as raw_*_contents.
 */
export interface InferTensorContents {
  'bool_contents'?: (boolean)[];
  /**
   * INT8, INT16, INT32
   */
  'int_contents'?: (number)[];
  'int64_contents'?: (number | string | Long)[];
  /**
   * UINT8, UINT16, UINT32
   */
  'uint_contents'?: (number)[];
  'uint64_contents'?: (number | string | Long)[];
  'fp32_contents'?: (number | string)[];
  'fp64_contents'?: (number | string)[];
  /**
   * BYTES
   */
  'bytes_contents'?: (Buffer | Uint8Array | string)[];
}

/**
 * Typed tensor payload; use the list matching the tensor datatype. FP16/BF16
 * have no typed list and must travel as raw_*_contents.
 */
export interface InferTensorContents__Output {
  'bool_contents': (boolean)[];
  /**
   * INT8, INT16, INT32
   */
  'int_contents': (number)[];
  'int64_contents': (string)[];
  /**
   * UINT8, UINT16, UINT32
   */
  'uint_contents': (number)[];
  'uint64_contents': (string)[];
  'fp32_contents': (number)[];
  'fp64_contents': (number)[];
  /**
   * BYTES
   */
  'bytes_contents': (Buffer)[];
}
