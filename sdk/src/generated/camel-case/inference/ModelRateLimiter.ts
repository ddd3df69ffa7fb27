// Original file: protos/model_config.proto


export interface _inference_ModelRateLimiter_Resource {
  'name'?: (string);
  'global'?: (boolean);
  'count'?: (number);
}

export interface _inference_ModelRateLimiter_Resource__Output {
  'name': (string);
  'global': (boolean);
  'count': (number);
}

/**
 * Rate-limiter requirements of an instance group.
 */
export interface ModelRateLimiter {
  'resources'?: (_inference_ModelRateLimiter_Resource)[];
  'priority'?: (number);
}

/**
 * Rate-limiter requirements of an instance group.
 */
export interface ModelRateLimiter__Output {
  'resources': (_inference_ModelRateLimiter_Resource__Output)[];
  'priority': (number);
}
