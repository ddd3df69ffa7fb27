// Original file: protos/grpc_service.proto


export interface ModelReadyRequest {
  'name'?: (string);
  /**
   * empty: server picks per version policy
   */
  'version'?: (string);
}

export interface ModelReadyRequest__Output {
  'name': (string);
  /**
   * empty: server picks per version policy
   */
  'version': (string);
}
