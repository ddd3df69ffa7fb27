// Original file: protos/grpc_service.proto


export interface SystemSharedMemoryRegisterResponse {
}

export interface SystemSharedMemoryRegisterResponse__Output {
}
