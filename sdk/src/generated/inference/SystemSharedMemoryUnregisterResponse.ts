// Original file: protos/grpc_service.proto


export interface SystemSharedMemoryUnregisterResponse {
}

export interface SystemSharedMemoryUnregisterResponse__Output {
}
