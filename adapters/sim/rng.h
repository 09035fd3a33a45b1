#pragma once
// The producers' random numbers (`ffe produce`, `ffe bench e2e`): splitmix64, so a seed gives
// the same orders on every platform (std distributions are not specified bit for bit).

#include <cstdint>

namespace ffe::participants {

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next() {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : next() % n; }  // [0, n)
  double percent() { return static_cast<double>(next() >> 11) * 0x1.0p-53 * 100.0; }  // [0, 100)

 private:
  std::uint64_t state_;
};

}  // namespace ffe::participants
