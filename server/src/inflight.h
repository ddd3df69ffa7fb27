#pragma once
// Counts a model version's live requests (queued, executing, or still answerable through a response
// factory) so that unloading can wait until none is left before finalizing the backend's objects.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace llm_server {

class InflightCounter {
 public:
  // Holds one count for as long as it lives.
  class Token {
   public:
    Token() = default;
    explicit Token(InflightCounter* counter) : counter_(counter) { counter_->add(); }
    Token(Token&& other) noexcept : counter_(other.counter_) { other.counter_ = nullptr; }
    Token& operator=(Token&& other) noexcept {
      if (this != &other) {
        release();
        counter_ = other.counter_;
        other.counter_ = nullptr;
      }
      return *this;
    }
    Token(const Token&) = delete;
    Token& operator=(const Token&) = delete;
    ~Token() { release(); }

   private:
    void release() noexcept {
      if (counter_ != nullptr) {
        counter_->remove();
        counter_ = nullptr;
      }
    }
    InflightCounter* counter_ = nullptr;
  };

  Token acquire() { return Token(this); }

  uint64_t count() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return count_;
  }

  // Waits until the count is zero; false when 'deadline' passed first.
  bool wait_for_zero(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock<std::mutex> lock(mutex_);
    return zero_.wait_until(lock, deadline, [this] { return count_ == 0; });
  }
  void wait_for_zero() {
    std::unique_lock<std::mutex> lock(mutex_);
    zero_.wait(lock, [this] { return count_ == 0; });
  }

 private:
  void add() {
    std::lock_guard<std::mutex> lock(mutex_);
    ++count_;
  }
  void remove() noexcept {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--count_ == 0) {
      zero_.notify_all();
    }
  }

  mutable std::mutex mutex_;
  std::condition_variable zero_;
  uint64_t count_ = 0;
};

}  // namespace llm_server
