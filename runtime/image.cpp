// image.cpp: see image.h. Decoding is stb_image's (Debian libstb-dev).
#include "image.h"

#include <cmath>
#include <fstream>
#include <iterator>

#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_FAILURE_USERMSG
#include <stb/stb_image.h>

namespace cnnc::rt {

bool loadImage(const std::string& path, int C, int H, int W, const std::vector<double>& mean, const std::vector<double>& std,
               std::vector<float>& out, std::string& err) {
  int w = 0, h = 0, c = 0;
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (!f.good() && !f.eof()) {
    err = "cannot read image '" + path + "'";
    return false;
  }
  if (!bytes.empty() && bytes[0] == 0xFF && !jpegHuffmanTablesFit(bytes)) {
    err = "cannot read image '" + path + "': corrupt JPEG (a Huffman table declares more than 256 codes)";
    return false;
  }
  unsigned char* px = bytes.size() > (size_t)INT32_MAX ? nullptr : stbi_load_from_memory(bytes.data(), (int)bytes.size(), &w, &h, &c, 0);
  if (!px) {
    err = "cannot read image '" + path + "': " + stbi_failure_reason();
    return false;
  }
  if (w <= 0 || h <= 0 || (int64_t)w * h > (int64_t)1 << 28) {
    stbi_image_free(px);
    err = "image '" + path + "' has an unusable size";
    return false;
  }
  out.assign((size_t)C * H * W, 0.0f);
  auto at = [&](int x, int y, int ch) { return px[((size_t)y * w + x) * c + ch] / 255.0f; };
  // Colour channel `ch` of the source (alpha ignored), adapted to the network's channel count.
  auto sample = [&](int x, int y, int ch) -> float {
    int colour = c >= 3 ? 3 : 1;
    if (C == 1 && colour == 3) return (at(x, y, 0) + at(x, y, 1) + at(x, y, 2)) / 3.0f;
    return at(x, y, colour == 1 ? 0 : std::min(ch, 2));
  };
  for (int ch = 0; ch < C; ++ch)
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        // Bilinear, with pixel centres aligned (align_corners = false).
        float sx = std::max(0.0f, (x + 0.5f) * w / W - 0.5f), sy = std::max(0.0f, (y + 0.5f) * h / H - 0.5f);
        int x0 = std::min((int)sx, w - 1), y0 = std::min((int)sy, h - 1);
        int x1 = std::min(x0 + 1, w - 1), y1 = std::min(y0 + 1, h - 1);
        float fx = sx - x0, fy = sy - y0;
        float v = (1 - fy) * ((1 - fx) * sample(x0, y0, ch) + fx * sample(x1, y0, ch)) + fy * ((1 - fx) * sample(x0, y1, ch) + fx * sample(x1, y1, ch));
        double m = ch < (int)mean.size() ? mean[ch] : 0.0, s = ch < (int)std.size() ? std[ch] : 1.0;
        out[((size_t)ch * H + y) * W + x] = (float)((v - m) / s);
      }
  stbi_image_free(px);
  return true;
}

}  // namespace cnnc::rt
