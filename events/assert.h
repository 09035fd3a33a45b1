#pragma once
// Always-on assertions for programmer errors (STYLE habit 3, TigerBeetle): they stay in
// release builds, say what broke and where, and abort. Expected failures (bad input,
// business rejections) are values, never assertions.

#include <cstdio>
#include <cstdlib>

namespace ffe::detail {
[[noreturn]] inline void assert_failed(const char* condition, const char* message, const char* file,
                                       int line) {
  std::fprintf(stderr, "ffe: assertion failed at %s:%d: %s (%s)\n", file, line, message, condition);
  std::fflush(stderr);
  std::abort();
}
}  // namespace ffe::detail

#define FFE_ASSERT(condition, message)                                            \
  do {                                                                            \
    if (!(condition)) ::ffe::detail::assert_failed(#condition, message, __FILE__, __LINE__); \
  } while (false)
