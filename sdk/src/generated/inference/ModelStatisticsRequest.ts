// Original file: protos/grpc_service.proto


export interface ModelStatisticsRequest {
  /**
   * empty: all models
   */
  'name'?: (string);
  /**
   * empty: all versions
   */
  'version'?: (string);
}

export interface ModelStatisticsRequest__Output {
  /**
   * empty: all models
   */
  'name': (string);
  /**
   * empty: all versions
   */
  'version': (string);
}
