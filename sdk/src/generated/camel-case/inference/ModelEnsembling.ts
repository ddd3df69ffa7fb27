// Original file: protos/model_config.proto

import type { Long } from '@grpc/proto-loader';

export interface _inference_ModelEnsembling_Step {
  'modelName'?: (string);
  /**
   * -1: latest
   */
  'modelVersion'?: (number | string | Long);
  /**
   * step-model input -> ensemble tensor
   */
  'inputMap'?: ({[key: string]: string});
  /**
   * step-model output -> ensemble tensor
   */
  'outputMap'?: ({[key: string]: string});
  /**
   * reserved upstream; leave unset
   */
  'modelNamespace'?: (string);
}

export interface _inference_ModelEnsembling_Step__Output {
  'modelName': (string);
  /**
   * -1: latest
   */
  'modelVersion': (number);
  /**
   * step-model input -> ensemble tensor
   */
  'inputMap': ({[key: string]: string});
  /**
   * step-model output -> ensemble tensor
   */
  'outputMap': ({[key: string]: string});
  /**
   * reserved upstream; leave unset
   */
  'modelNamespace': (string);
}

export interface ModelEnsembling {
  'step'?: (_inference_ModelEnsembling_Step)[];
  /**
   * 0: unlimited
   */
  'maxInflightRequests'?: (number);
}

export interface ModelEnsembling__Output {
  'step': (_inference_ModelEnsembling_Step__Output)[];
  /**
   * 0: unlimited
   */
  'maxInflightRequests': (number);
}
