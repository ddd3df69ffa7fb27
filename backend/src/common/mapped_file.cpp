#include "common/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

#include "common/error.h"

namespace llm {

namespace {

// A descriptor of a regular file, closed on destruction. O_NONBLOCK: opening a FIFO for reading
// would otherwise wait for a writer forever (a hung model load); regular files ignore the flag.
class RegularFileDescriptor {
 public:
  RegularFileDescriptor(const std::filesystem::path& path, std::string_view what) {
    const auto named = [&] { return what.empty() ? path.string() : std::string(what) + " " + path.string(); };
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd_ < 0) throw_error("cannot open ", named(), ": ", std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      const int err = errno;
      ::close(fd_);
      throw_error("cannot stat ", named(), ": ", std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd_);
      const char* kind = S_ISDIR(st.st_mode)    ? "a directory"
                         : S_ISFIFO(st.st_mode) ? "a FIFO"
                         : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device"
                                                                       : "not a regular file";
      throw_error(named(), " is ", kind, ", not a regular file: point it at the file itself");
    }
    size_ = static_cast<size_t>(st.st_size);
  }
  ~RegularFileDescriptor() { ::close(fd_); }
  RegularFileDescriptor(const RegularFileDescriptor&) = delete;
  RegularFileDescriptor& operator=(const RegularFileDescriptor&) = delete;
  int fd() const { return fd_; }
  size_t size() const { return size_; }

 private:
  int fd_ = -1;
  size_t size_ = 0;
};

}  // namespace

std::string read_regular_file(const std::filesystem::path& path, std::string_view what, size_t max_bytes) {
  const RegularFileDescriptor file(path, what);
  if (file.size() > max_bytes) {
    throw_error(what, " ", path.string(), " is ", file.size(), " bytes, more than the ", max_bytes,
                " such a file can plausibly be; is it the right file?");
  }
  std::string bytes(file.size(), '\0');
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::read(file.fd(), bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_error("cannot read ", what, " ", path.string(), ": ", std::strerror(errno));
    if (n == 0) break;  // shrank while being read
    done += static_cast<size_t>(n);
  }
  bytes.resize(done);
  return bytes;
}

MappedFile::MappedFile(const std::filesystem::path& path) : path_(path) {
  const RegularFileDescriptor file(path, "");
  const int fd = file.fd();
  size_ = file.size();
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) throw_error("cannot map ", path.string(), ": ", std::strerror(errno));
    data_ = static_cast<const uint8_t*>(p);
  }
}

MappedFile::~MappedFile() { release(); }

MappedFile::MappedFile(MappedFile&& other) noexcept
    : path_(std::move(other.path_)), data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

MappedFile& MappedFile::operator=(MappedFile&& other) noexcept {
  if (this != &other) {
    release();
    path_ = std::move(other.path_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void MappedFile::release_resident_pages() const noexcept {
  // Advisory: on failure the pages merely stay resident.
  if (data_ != nullptr && size_ > 0) ::madvise(const_cast<uint8_t*>(data_), size_, MADV_DONTNEED);
}

void MappedFile::release() noexcept {
  if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
  data_ = nullptr;
  size_ = 0;
}

HugePageBuffer::HugePageBuffer(size_t bytes) {
  if (bytes == 0) return;
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;
  void* p = ::mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw_error("cannot allocate ", bytes, " bytes for model weights: ", std::strerror(errno));
#ifdef MADV_HUGEPAGE
  ::madvise(p, rounded, MADV_HUGEPAGE);  // advisory: fine if the kernel declines
#endif
  data_ = static_cast<uint8_t*>(p);
  size_ = rounded;
}

HugePageBuffer::~HugePageBuffer() { release(); }

HugePageBuffer::HugePageBuffer(HugePageBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

HugePageBuffer& HugePageBuffer::operator=(HugePageBuffer&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void HugePageBuffer::release() noexcept {
  if (data_ != nullptr) ::munmap(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace llm
