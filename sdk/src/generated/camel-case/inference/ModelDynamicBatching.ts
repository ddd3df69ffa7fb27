// Original file: protos/model_config.proto

import type { ModelQueuePolicy as _inference_ModelQueuePolicy, ModelQueuePolicy__Output as _inference_ModelQueuePolicy__Output } from '../inference/ModelQueuePolicy.js';
import type { Long } from '@grpc/proto-loader';

export interface ModelDynamicBatching {
  'preferredBatchSize'?: (number)[];
  'maxQueueDelayMicroseconds'?: (number | string | Long);
  'preserveOrdering'?: (boolean);
  'priorityLevels'?: (number | string | Long);
  'defaultPriorityLevel'?: (number | string | Long);
  'defaultQueuePolicy'?: (_inference_ModelQueuePolicy | null);
  'priorityQueuePolicy'?: ({[key: number]: _inference_ModelQueuePolicy});
}

export interface ModelDynamicBatching__Output {
  'preferredBatchSize': (number)[];
  'maxQueueDelayMicroseconds': (number);
  'preserveOrdering': (boolean);
  'priorityLevels': (number);
  'defaultPriorityLevel': (number);
  'defaultQueuePolicy': (_inference_ModelQueuePolicy__Output | null);
  'priorityQueuePolicy': ({[key: number]: _inference_ModelQueuePolicy__Output});
}
