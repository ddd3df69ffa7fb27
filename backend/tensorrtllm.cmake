# The TensorRT-LLM engine (backend/src/engine/tensorrtllm/): built only with
# -DLLM_WITH_TENSORRTLLM=ON, where TensorRT-LLM 0.13 and CUDA are installed (NVIDIA's
# tritonserver:24.09-trtllm-python-py3 container has both; deploy/Dockerfile builds there).
# The default build is unaffected: without the option, engine "tensorrtllm" is a clear load error.
#
# Where TensorRT-LLM is looked for, first match wins:
#   TRTLLM_ROOT (CMake or environment variable): a TensorRT-LLM source tree (cpp/include, and
#     cpp/build/tensorrt_llm for the libraries) or the pip package folder (include/, libs/);
#   the tensorrt_llm Python package found by python3 (the pip wheel ships include/ and libs/);
#   /usr/local/tensorrt_llm, /opt/tensorrt_llm.
# Set TRTLLM_INCLUDE_DIR / TRTLLM_LIBRARY / TRTLLM_PLUGIN_LIBRARY to override each, and
# CUDAToolkit_ROOT for CUDA. A missing piece stops the configure with one line naming it (the
# messages start with a space so CMake prints them unwrapped).
option(LLM_WITH_TENSORRTLLM "Build the TensorRT-LLM engine (needs TensorRT-LLM 0.13 and CUDA)" OFF)
if(NOT LLM_WITH_TENSORRTLLM)
  return()
endif()

set(TRTLLM_ROOT "$ENV{TRTLLM_ROOT}" CACHE PATH "TensorRT-LLM source tree or pip package folder")
set(TRTLLM_CXX11_ABI 1 CACHE STRING "_GLIBCXX_USE_CXX11_ABI of libtensorrt_llm.so (1 in NVIDIA's containers)")

set(_trtllm_roots)
if(TRTLLM_ROOT)
  list(APPEND _trtllm_roots "${TRTLLM_ROOT}")
endif()
find_program(_trtllm_python NAMES python3 python)
if(_trtllm_python)
  # Locates the package without importing it (importing needs a GPU driver).
  execute_process(
    COMMAND ${_trtllm_python} -c
      "import importlib.util as u; s = u.find_spec('tensorrt_llm'); print(s.submodule_search_locations[0] if s and s.submodule_search_locations else '')"
    OUTPUT_VARIABLE _trtllm_package OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(_trtllm_package)
    list(APPEND _trtllm_roots "${_trtllm_package}")
  endif()
endif()
list(APPEND _trtllm_roots /usr/local/tensorrt_llm /opt/tensorrt_llm)

find_path(TRTLLM_INCLUDE_DIR tensorrt_llm/executor/executor.h
  HINTS ${_trtllm_roots} PATH_SUFFIXES include cpp/include NO_DEFAULT_PATH)
if(NOT TRTLLM_INCLUDE_DIR)
  message(FATAL_ERROR " LLM_WITH_TENSORRTLLM=ON but TensorRT-LLM's headers (tensorrt_llm/executor/executor.h) were not found; set TRTLLM_ROOT to a TensorRT-LLM 0.13 source tree or pip package folder")
endif()
find_library(TRTLLM_LIBRARY NAMES tensorrt_llm
  HINTS ${_trtllm_roots} PATH_SUFFIXES libs lib cpp/build/tensorrt_llm NO_DEFAULT_PATH)
if(NOT TRTLLM_LIBRARY)
  message(FATAL_ERROR " LLM_WITH_TENSORRTLLM=ON but libtensorrt_llm.so was not found; set TRTLLM_ROOT (or TRTLLM_LIBRARY) to the TensorRT-LLM 0.13 installation")
endif()
find_library(TRTLLM_PLUGIN_LIBRARY NAMES nvinfer_plugin_tensorrt_llm
  HINTS ${_trtllm_roots} PATH_SUFFIXES libs lib cpp/build/tensorrt_llm/plugins NO_DEFAULT_PATH)
if(NOT TRTLLM_PLUGIN_LIBRARY)
  message(FATAL_ERROR " LLM_WITH_TENSORRTLLM=ON but libnvinfer_plugin_tensorrt_llm.so was not found; set TRTLLM_ROOT (or TRTLLM_PLUGIN_LIBRARY) to the TensorRT-LLM 0.13 installation")
endif()
find_package(CUDAToolkit QUIET)
if(NOT CUDAToolkit_FOUND)
  message(FATAL_ERROR " LLM_WITH_TENSORRTLLM=ON but the CUDA toolkit (cuda_runtime.h, libcudart) was not found; set CUDAToolkit_ROOT")
endif()
# TensorRT's headers, where TensorRT-LLM's include them (NVIDIA's containers: /usr/local/tensorrt).
find_path(TENSORRT_INCLUDE_DIR NvInfer.h HINTS $ENV{TENSORRT_ROOT} /usr/local/tensorrt PATH_SUFFIXES include)

message(STATUS "TensorRT-LLM engine: headers ${TRTLLM_INCLUDE_DIR}, ${TRTLLM_LIBRARY}, ${TRTLLM_PLUGIN_LIBRARY}, CUDA ${CUDAToolkit_VERSION}")

add_library(llm_tensorrtllm_engine STATIC src/engine/tensorrtllm/tensorrtllm_engine.cpp)
target_include_directories(llm_tensorrtllm_engine SYSTEM PRIVATE ${TRTLLM_INCLUDE_DIR})
if(TENSORRT_INCLUDE_DIR)
  target_include_directories(llm_tensorrtllm_engine SYSTEM PRIVATE ${TENSORRT_INCLUDE_DIR})
endif()
if(NOT TRTLLM_CXX11_ABI)
  # The engine's C++ types cross into the adapter: everything linked with it must use the same ABI.
  target_compile_definitions(llm_engine PUBLIC _GLIBCXX_USE_CXX11_ABI=0)
endif()
target_link_libraries(llm_tensorrtllm_engine PUBLIC llm_engine ${TRTLLM_LIBRARY} ${TRTLLM_PLUGIN_LIBRARY} CUDA::cudart)

target_compile_definitions(llm_triton_glue PRIVATE LLM_WITH_TENSORRTLLM=1)
target_link_libraries(llm_triton_glue PUBLIC llm_tensorrtllm_engine)
