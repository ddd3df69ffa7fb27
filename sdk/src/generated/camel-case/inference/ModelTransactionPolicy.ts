// Original file: protos/model_config.proto


export interface ModelTransactionPolicy {
  /**
   * True when a request may yield zero or many responses (streaming LLMs).
   */
  'decoupled'?: (boolean);
}

export interface ModelTransactionPolicy__Output {
  /**
   * True when a request may yield zero or many responses (streaming LLMs).
   */
  'decoupled': (boolean);
}
