#pragma once
// Test double of the subset of CUDA's <cuda_runtime_api.h> the TensorRT-LLM engine adapter calls
// (device, its properties, driver and runtime versions). Same names and signatures as CUDA's;
// answers with a fixed imaginary device so tests can check what describe() reports. Written for
// this project; it is not NVIDIA's header.
#include <cstddef>
#include <cstring>

enum cudaError { cudaSuccess = 0, cudaErrorNoDevice = 100 };
typedef enum cudaError cudaError_t;

struct cudaDeviceProp {
  char name[256];
  size_t totalGlobalMem;
  int major;
  int minor;
};

inline cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device) {
  if (device != 0) return cudaErrorNoDevice;
  *properties = cudaDeviceProp{};
  std::strncpy(properties->name, "Test Double GPU", sizeof(properties->name) - 1);
  properties->totalGlobalMem = size_t{80} << 30;
  properties->major = 9;
  properties->minor = 0;
  return cudaSuccess;
}

inline cudaError_t cudaDriverGetVersion(int* version) {
  *version = 12060;
  return cudaSuccess;
}

inline cudaError_t cudaRuntimeGetVersion(int* version) {
  *version = 12040;
  return cudaSuccess;
}
