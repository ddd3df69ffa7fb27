// Original file: protos/grpc_service.proto


export interface SystemSharedMemoryUnregisterRequest {
  /**
   * empty: unregister all
   */
  'name'?: (string);
}

export interface SystemSharedMemoryUnregisterRequest__Output {
  /**
   * empty: unregister all
   */
  'name': (string);
}
