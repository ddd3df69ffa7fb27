// Original file: protos/model_config.proto

import type { DataType as _inference_DataType, DataType__Output as _inference_DataType__Output } from '../inference/DataType.js';
import type { ModelTensorReshape as _inference_ModelTensorReshape, ModelTensorReshape__Output as _inference_ModelTensorReshape__Output } from '../inference/ModelTensorReshape.js';
import type { Long } from '@grpc/proto-loader';

export interface ModelOutput {
  'name'?: (string);
  'dataType'?: (_inference_DataType);
  'dims'?: (number | string | Long)[];
  'labelFilename'?: (string);
  'reshape'?: (_inference_ModelTensorReshape | null);
  'isShapeTensor'?: (boolean);
  'isNonLinearFormatIo'?: (boolean);
}

export interface ModelOutput__Output {
  'name': (string);
  'dataType': (_inference_DataType__Output);
  'dims': (number)[];
  'labelFilename': (string);
  'reshape': (_inference_ModelTensorReshape__Output | null);
  'isShapeTensor': (boolean);
  'isNonLinearFormatIo': (boolean);
}
