// Original file: protos/grpc_service.proto

import type { Long } from '@grpc/proto-loader';

export interface MemoryUsage {
  /**
   * "CPU", "CPU_PINNED", "GPU"
   */
  'type'?: (string);
  'id'?: (number | string | Long);
  'byteSize'?: (number | string | Long);
}

export interface MemoryUsage__Output {
  /**
   * "CPU", "CPU_PINNED", "GPU"
   */
  'type': (string);
  'id': (number);
  'byteSize': (number);
}
