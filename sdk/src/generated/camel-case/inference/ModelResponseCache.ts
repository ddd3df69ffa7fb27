// Original file: protos/model_config.proto


export interface ModelResponseCache {
  'enable'?: (boolean);
}

export interface ModelResponseCache__Output {
  'enable': (boolean);
}
