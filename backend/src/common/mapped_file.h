#pragma once
// Reading the model's files: a read-only memory map of a whole file (RAII), used to parse
// checkpoints without reading them into heap buffers, and whole small files read into memory.
// Both open without blocking and accept regular files only.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>

namespace llm {

// The whole of a regular file, read: throws Error naming `path` (and `what` it is, e.g. "the
// checkpoint's config") when it cannot be opened, is not a regular file (a FIFO or device, which
// would block or never end), or holds more than max_bytes. Opening never blocks.
std::string read_regular_file(const std::filesystem::path& path, std::string_view what, size_t max_bytes);

class MappedFile {
 public:
  explicit MappedFile(const std::filesystem::path& path);  // throws Error naming the file
  ~MappedFile();
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const std::filesystem::path& path() const { return path_; }
  // Drops this process's resident pages of the map (they stay in the page cache and fault back
  // in on the next read), e.g. once the hot parts have been copied out.
  void release_resident_pages() const noexcept;

 private:
  void release() noexcept;
  std::filesystem::path path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Anonymous, page-aligned, zero-initialised memory for hot weights, backed by transparent huge
// pages where the kernel allows (decode streams weights; page-cache-backed maps are slower).
class HugePageBuffer {
 public:
  HugePageBuffer() = default;
  explicit HugePageBuffer(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(HugePageBuffer&& other) noexcept;
  HugePageBuffer& operator=(HugePageBuffer&& other) noexcept;
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  void release() noexcept;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace llm
