// Original file: protos/grpc_service.proto

import type { Long } from '@grpc/proto-loader';

export interface StatisticDuration {
  'count'?: (number | string | Long);
  /**
   * cumulative nanoseconds
   */
  'ns'?: (number | string | Long);
}

export interface StatisticDuration__Output {
  'count': (number);
  /**
   * cumulative nanoseconds
   */
  'ns': (number);
}
