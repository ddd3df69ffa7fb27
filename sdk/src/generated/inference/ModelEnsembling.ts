// Original file: protos/model_config.proto

import type { Long } from '@grpc/proto-loader';

export interface _inference_ModelEnsembling_Step {
  'model_name'?: (string);
  /**
   * -1: latest
   */
  'model_version'?: (number | string | Long);
  /**
   * step-model input -> ensemble tensor
   */
  'input_map'?: ({[key: string]: string});
  /**
   * step-model output -> ensemble tensor
   */
  'output_map'?: ({[key: string]: string});
  /**
   * reserved upstream; leave unset
   */
  'model_namespace'?: (string);
}

export interface _inference_ModelEnsembling_Step__Output {
  'model_name': (string);
  /**
   * -1: latest
   */
  'model_version': (string);
  /**
   * step-model input -> ensemble tensor
   */
  'input_map': ({[key: string]: string});
  /**
   * step-model output -> ensemble tensor
   */
  'output_map': ({[key: string]: string});
  /**
   * reserved upstream; leave unset
   */
  'model_namespace': (string);
}

export interface ModelEnsembling {
  'step'?: (_inference_ModelEnsembling_Step)[];
  /**
   * 0: unlimited
   */
  'max_inflight_requests'?: (number);
}

export interface ModelEnsembling__Output {
  'step': (_inference_ModelEnsembling_Step__Output)[];
  /**
   * 0: unlimited
   */
  'max_inflight_requests': (number);
}
