// fnv1a.h: the 64-bit FNV-1a hash. Stable across runs, builds and platforms (unlike std::hash), so
// it can name files and records: kernel names, kernel-cache entries, tuning-record checksums.
// Enough to tell inputs apart, not a security measure.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace cnnc {

inline constexpr uint64_t kFnvPrime = 1099511628211ull;
// The standard offset basis, 0xcbf29ce484222325.
inline constexpr uint64_t kFnvOffsetBasis = 14695981039346656037ull;
// The basis cnnc has always hashed from: the standard one with its last digit lost. Kept, because
// changing it would rename every kernel, miss every kernel-cache entry and fail the checksum of every
// tuning record already written.
inline constexpr uint64_t kCnncHashBasis = 1469598103934665603ull;

constexpr uint64_t fnv1a(std::string_view s, uint64_t basis = kCnncHashBasis) {
  uint64_t h = basis;
  for (char c : s) {
    h ^= (unsigned char)c;
    h *= kFnvPrime;
  }
  return h;
}

// fnv1a(s) as 16 lower-case hex digits.
inline std::string fnv1aHex(std::string_view s, uint64_t basis = kCnncHashBasis) {
  char b[17];
  snprintf(b, sizeof b, "%016llx", (unsigned long long)fnv1a(s, basis));
  return b;
}

}  // namespace cnnc
