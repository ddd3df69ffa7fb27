#include "server_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <grpcpp/grpcpp.h>

namespace llm_server_test {
namespace {

constexpr std::chrono::seconds kStartupLimit{120};

std::vector<char*> to_argv(std::vector<std::string>& storage) {
  std::vector<char*> argv;
  for (std::string& arg : storage) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);
  return argv;
}

// Forks and execs llm-server with stdout to 'stdout_fd' and stderr to 'stderr_fd'.
pid_t spawn(std::vector<std::string> args, int stdout_fd, int stderr_fd) {
  args.insert(args.begin(), LLM_SERVER_PATH);
  std::vector<char*> argv = to_argv(args);  // built before fork: the child only execs
  const pid_t pid = fork();
  if (pid < 0) {
    throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    dup2(stdout_fd, STDOUT_FILENO);
    dup2(stderr_fd, STDERR_FILENO);
    // The test process may block signals in its threads; the server must start clean.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

// Waits up to 'limit' for 'pid' to end; the wait status, or -1 when it did not.
int wait_bounded(pid_t pid, std::chrono::milliseconds limit) {
  const auto give_up = std::chrono::steady_clock::now() + limit;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) {
      return status;
    }
    if (done < 0 || std::chrono::steady_clock::now() >= give_up) {
      return -1;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base != nullptr && *base ? base : "/tmp") + "/llm-server-test-XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    throw std::runtime_error("mkdtemp failed: " + std::string(std::strerror(errno)));
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

void write_file(const std::filesystem::path& path, const std::string& contents) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << contents;
  if (!out) {
    throw std::runtime_error("cannot write " + path.string());
  }
}

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void write_model(const std::filesystem::path& repository, const std::string& name,
                 const std::string& config, const std::vector<int>& versions) {
  write_file(repository / name / "config.pbtxt", config);
  for (int version : versions) {
    std::filesystem::create_directories(repository / name / std::to_string(version));
  }
}

ServerProcess::ServerProcess(const std::vector<std::string>& args, std::filesystem::path log_file)
    : log_file_(std::move(log_file)) {
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe failed");
  }
  const int log_fd = open(log_file_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  std::vector<std::string> full_args{"--grpc-port", "0", "--http-port", "0", "--metrics-port", "0"};
  full_args.insert(full_args.end(), args.begin(), args.end());
  pid_ = spawn(full_args, pipe_fds[1], log_fd);
  close(pipe_fds[1]);
  close(log_fd);

  // Read stdout until the startup line (bounded).
  std::string output;
  const std::string marker = "serving gRPC on ";
  const auto give_up = std::chrono::steady_clock::now() + kStartupLimit;
  while (port_ == 0 && std::chrono::steady_clock::now() < give_up) {
    pollfd waiting{pipe_fds[0], POLLIN, 0};
    if (poll(&waiting, 1, 200) <= 0) {
      continue;
    }
    char buffer[512];
    const ssize_t got = read(pipe_fds[0], buffer, sizeof(buffer));
    if (got <= 0) {
      break;  // the server exited
    }
    output.append(buffer, static_cast<size_t>(got));
    const size_t at = output.find(marker);
    const size_t end = at == std::string::npos ? std::string::npos : output.find('\n', at);
    if (end != std::string::npos) {
      const std::string endpoint = output.substr(at + marker.size(), end - at - marker.size());
      port_ = std::stoi(endpoint.substr(endpoint.rfind(':') + 1));
    }
  }
  close(pipe_fds[0]);
  if (port_ == 0) {
    stop(SIGKILL, std::chrono::seconds(10));
    throw std::runtime_error("llm-server did not start; stdout: " + output + "\nlog:\n" + log());
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) {
    stop(SIGKILL, std::chrono::seconds(10));
  }
}

std::unique_ptr<inference::GRPCInferenceService::Stub> ServerProcess::stub() const {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(INT32_MAX);
  auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port_),
                                           grpc::InsecureChannelCredentials(), arguments);
  return inference::GRPCInferenceService::NewStub(channel);
}

std::string ServerProcess::log() const { return read_file(log_file_); }

int ServerProcess::stop(int signal, std::chrono::seconds limit) {
  if (pid_ <= 0) {
    return -1;
  }
  kill(pid_, signal);
  int status = wait_bounded(pid_, limit);
  if (status == -1) {
    kill(pid_, SIGKILL);
    wait_bounded(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
  return status;
}

int run_server_command(const std::vector<std::string>& args, std::string* output) {
  TempDir dir;
  const std::filesystem::path out_path = dir.path() / "out.txt";
  const int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const pid_t pid = spawn(args, fd, fd);
  close(fd);
  int status = wait_bounded(pid, std::chrono::seconds(60));
  if (status == -1) {
    kill(pid, SIGKILL);
    wait_bounded(pid, std::chrono::seconds(10));
  }
  *output = read_file(out_path);
  return status;
}

int signal_server_after(const std::vector<std::string>& args, std::chrono::milliseconds delay, int signal,
                        std::chrono::seconds limit, std::string* output) {
  TempDir dir;
  const std::filesystem::path out_path = dir.path() / "out.txt";
  const int fd = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  const pid_t pid = spawn(args, fd, fd);
  close(fd);
  std::this_thread::sleep_for(delay);
  kill(pid, signal);
  const int status = wait_bounded(pid, limit);
  if (status == -1) {
    kill(pid, SIGKILL);
    wait_bounded(pid, std::chrono::seconds(10));
  }
  *output = read_file(out_path);
  return status;
}

std::string serialize_bytes(const std::vector<std::string>& elements) {
  std::string raw;
  for (const std::string& element : elements) {
    const uint32_t length = static_cast<uint32_t>(element.size());
    raw.append(reinterpret_cast<const char*>(&length), sizeof(length));
    raw.append(element);
  }
  return raw;
}

std::vector<std::string> deserialize_bytes(const std::string& raw) {
  std::vector<std::string> elements;
  size_t offset = 0;
  while (offset + sizeof(uint32_t) <= raw.size()) {
    uint32_t length = 0;
    std::memcpy(&length, raw.data() + offset, sizeof(length));
    offset += sizeof(length);
    elements.push_back(raw.substr(offset, length));
    offset += length;
  }
  return elements;
}

std::chrono::system_clock::time_point call_deadline(std::chrono::seconds seconds) {
  return std::chrono::system_clock::now() + seconds;
}

}  // namespace llm_server_test
