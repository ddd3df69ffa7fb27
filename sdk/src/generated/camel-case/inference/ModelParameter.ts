// Original file: protos/model_config.proto


/**
 * Free-form backend parameter (config.pbtxt `parameters { key value }`).
 */
export interface ModelParameter {
  'stringValue'?: (string);
}

/**
 * Free-form backend parameter (config.pbtxt `parameters { key value }`).
 */
export interface ModelParameter__Output {
  'stringValue': (string);
}
