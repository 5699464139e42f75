// utf8.h: strict UTF-8 validation: no overlong forms, no surrogates (U+D800..U+DFFF), nothing above
// U+10FFFF. Used on .cnn sources (compiler/parser.cpp) and on safetensors headers.
#pragma once
#include <cstddef>
#include <cstdint>

namespace cnnc {

enum class Utf8Fault {
  None,
  BadByte,      // a byte that cannot start a character, or a character cut off by the end
  BadSequence,  // a bad continuation byte, an overlong form, a surrogate or a code point above U+10FFFF
};

// The offset of the first byte that does not start a valid character, or n if all of s[0, n) is
// valid; `fault` (when given) says why.
inline size_t firstBadUtf8(const unsigned char* s, size_t n, Utf8Fault* fault = nullptr) {
  auto bad = [&](size_t at, Utf8Fault f) {
    if (fault) *fault = f;
    return at;
  };
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp, min;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; min = 0x80; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; min = 0x800; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; min = 0x10000; }
    else return bad(i, Utf8Fault::BadByte);
    if (n - i < len) return bad(i, Utf8Fault::BadByte);
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return bad(i, Utf8Fault::BadSequence);
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return bad(i, Utf8Fault::BadSequence);
    i += len;
  }
  if (fault) *fault = Utf8Fault::None;
  return n;
}

inline bool isValidUtf8(const unsigned char* s, size_t n) { return firstBadUtf8(s, n) == n; }

}  // namespace cnnc
