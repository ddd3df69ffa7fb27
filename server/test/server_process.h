#pragma once
// Test helpers: a temporary model repository and llm-server running as a child process.
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "grpc_service.grpc.pb.h"

namespace llm_server_test {

// A directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

void write_file(const std::filesystem::path& path, const std::string& contents);
std::string read_file(const std::filesystem::path& path);

// <repository>/<name>/config.pbtxt and empty version directories.
void write_model(const std::filesystem::path& repository, const std::string& name,
                 const std::string& config, const std::vector<int>& versions = {1});

// llm-server started with "--grpc-port 0" plus 'args'; the constructor waits (bounded) for the
// "serving gRPC on ADDRESS:PORT" line and throws with the server's log when it does not come.
class ServerProcess {
 public:
  ServerProcess(const std::vector<std::string>& args, std::filesystem::path log_file);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub() const;
  std::string log() const;
  // Sends 'signal' and waits up to 'limit' for the process to end; returns its wait status, or
  // -1 if it is still running (it is then killed).
  int stop(int signal, std::chrono::seconds limit);

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::filesystem::path log_file_;
};

// Runs llm-server with 'args' to completion (bounded); returns the wait status and the output.
int run_server_command(const std::vector<std::string>& args, std::string* output);
// Starts llm-server with 'args', sends 'signal' after 'delay', and waits up to 'limit' for it to
// end; returns the wait status (or -1 when it did not end: it is then killed) and the output.
int signal_server_after(const std::vector<std::string>& args, std::chrono::milliseconds delay, int signal,
                        std::chrono::seconds limit, std::string* output);

// KServe BYTES tensors: a 4-byte little-endian length before each element.
std::string serialize_bytes(const std::vector<std::string>& elements);
std::vector<std::string> deserialize_bytes(const std::string& raw);

// A deadline for test calls: generous (sanitizer builds are slow) but finite.
std::chrono::system_clock::time_point call_deadline(std::chrono::seconds seconds = std::chrono::seconds(60));

}  // namespace llm_server_test
