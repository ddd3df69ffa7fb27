// Original file: protos/model_config.proto


/**
 * Free-form backend parameter (config.pbtxt `parameters { key value }`).
 */
export interface ModelParameter {
  'string_value'?: (string);
}

/**
 * Free-form backend parameter (config.pbtxt `parameters { key value }`).
 */
export interface ModelParameter__Output {
  'string_value': (string);
}
