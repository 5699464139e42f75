// image.h: reading a PNG or JPEG into a network's input (resize, channels, normalisation).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cnnc::rt {

// False for a JPEG that stb_image 2.27 would overflow on (a Huffman table of more than 256 codes,
// nothings/stb#1289): every decode of untrusted bytes checks this first.
bool jpegHuffmanTablesFit(const std::vector<uint8_t>& bytes);

// Loads `path` and writes C x H x W floats: pixels scaled to [0,1], bilinearly resized, grey
// expanded to 3 channels or colour averaged to 1, then (x - mean[c]) / std[c].
bool loadImage(const std::string& path, int C, int H, int W, const std::vector<double>& mean, const std::vector<double>& std,
               std::vector<float>& out, std::string& err);

}  // namespace cnnc::rt
