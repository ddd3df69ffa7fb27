// Original file: protos/grpc_service.proto

import type { Long } from '@grpc/proto-loader';

export interface MemoryUsage {
  /**
   * "CPU", "CPU_PINNED", "GPU"
   */
  'type'?: (string);
  'id'?: (number | string | Long);
  'byte_size'?: (number | string | Long);
}

export interface MemoryUsage__Output {
  /**
   * "CPU", "CPU_PINNED", "GPU"
   */
  'type': (string);
  'id': (string);
  'byte_size': (string);
}
