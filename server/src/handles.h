#pragma once
// The C API's opaque backend handles are the server's own objects: each TRITONBACKEND_* pointer is
// a reinterpret_cast of the object below, made only through these functions.
#include "triton/core/tritonbackend.h"

namespace llm_server {

class Backend;
class ModelVersion;
class ModelInstance;
class InferenceRequest;
class ResponseFactory;
class Response;
class MemoryManager;
struct InputTensor;
struct ResponseOutput;
struct BackendAttributes;

#define LLM_SERVER_HANDLE(Object, Handle)                                                 \
  inline Handle* to_handle(Object* object) noexcept {                                     \
    return reinterpret_cast<Handle*>(object);                                             \
  }                                                                                       \
  inline Object* from_handle(Handle* handle) noexcept {                                   \
    return reinterpret_cast<Object*>(handle);                                             \
  }

LLM_SERVER_HANDLE(Backend, TRITONBACKEND_Backend)
LLM_SERVER_HANDLE(ModelVersion, TRITONBACKEND_Model)
LLM_SERVER_HANDLE(ModelInstance, TRITONBACKEND_ModelInstance)
LLM_SERVER_HANDLE(InferenceRequest, TRITONBACKEND_Request)
LLM_SERVER_HANDLE(ResponseFactory, TRITONBACKEND_ResponseFactory)
LLM_SERVER_HANDLE(Response, TRITONBACKEND_Response)
LLM_SERVER_HANDLE(MemoryManager, TRITONBACKEND_MemoryManager)
LLM_SERVER_HANDLE(InputTensor, TRITONBACKEND_Input)
LLM_SERVER_HANDLE(ResponseOutput, TRITONBACKEND_Output)
LLM_SERVER_HANDLE(BackendAttributes, TRITONBACKEND_BackendAttribute)

#undef LLM_SERVER_HANDLE

}  // namespace llm_server
