// Original file: protos/grpc_service.proto

import type { StatisticDuration as _inference_StatisticDuration, StatisticDuration__Output as _inference_StatisticDuration__Output } from '../inference/StatisticDuration.js';
import type { Long } from '@grpc/proto-loader';

export interface InferBatchStatistics {
  'batchSize'?: (number | string | Long);
  'computeInput'?: (_inference_StatisticDuration | null);
  'computeInfer'?: (_inference_StatisticDuration | null);
  'computeOutput'?: (_inference_StatisticDuration | null);
}

export interface InferBatchStatistics__Output {
  'batchSize': (number);
  'computeInput': (_inference_StatisticDuration__Output | null);
  'computeInfer': (_inference_StatisticDuration__Output | null);
  'computeOutput': (_inference_StatisticDuration__Output | null);
}
