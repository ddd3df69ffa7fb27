// Original file: protos/grpc_service.proto


export interface CudaSharedMemoryUnregisterRequest {
  /**
   * empty: unregister all
   */
  'name'?: (string);
}

export interface CudaSharedMemoryUnregisterRequest__Output {
  /**
   * empty: unregister all
   */
  'name': (string);
}
