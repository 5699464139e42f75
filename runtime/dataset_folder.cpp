// dataset_folder.cpp: the "folder" data format of dataset.h: root/<class>/<image>.{png,jpg,jpeg}.
// Decoding is stb_image's; its implementation is compiled once, in image.cpp (PNG and JPEG only).
#include <stb/stb_image.h>

#include <algorithm>
#include <map>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "dataset.h"
#include "image.h"

namespace fs = std::filesystem;

namespace cnnc::rt {

namespace {

constexpr int64_t kMaxFileBytes = int64_t(1) << 30;       // stb takes an int length; no real image is this big
constexpr int kMaxSide = 16384;                           // per image side, decoded or asked for
constexpr int64_t kMaxImagePixels = int64_t(1) << 26;     // 64 Mpixel: one decode stays under 256 MiB
constexpr uint64_t kMaxDatasetBytes = uint64_t(1) << 34;  // 16 GiB of uint8 pixels in memory

// Paths in messages are quoted so that spaces and empty names stay visible.
std::string q(const std::string& path) { return "'" + path + "'"; }

// Only these extensions are images; anything else in a class folder (notes, CSVs) is ignored.
bool isImageName(const std::string& name) {
  auto dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string ext = name.substr(dot + 1);
  for (auto& ch : ext) ch = (char)tolower((unsigned char)ch);
  return ext == "png" || ext == "jpg" || ext == "jpeg";
}

struct ClassList {
  std::vector<std::string> names;               // sorted folder names = labels 0..K-1
  std::vector<std::vector<std::string>> files;  // per class, full paths, sorted
};

// Non-hidden entries of `dir` that are folders (wantDirs) or image files, sorted by bytes so that
// labels and image order do not depend on the file system's listing order.
bool listEntries(const std::string& dir, bool wantDirs, std::vector<std::string>& names, std::string& err) {
  std::error_code ec;
  names.clear();
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string n = it->path().filename().string();
    if (n.empty() || n[0] == '.') continue;
    std::error_code ec2;
    bool isDir = it->is_directory(ec2);
    if (wantDirs ? isDir : (!isDir && isImageName(n))) names.push_back(n);
  }
  if (ec) {
    err = "cannot list " + q(dir) + ": " + ec.message();
    return false;
  }
  std::sort(names.begin(), names.end());
  return true;
}

// The classes of `root` and their images; every class needs at least one image, or its label would
// silently never occur.
bool listClasses(const std::string& root, ClassList& cl, std::string& err) {
  std::error_code ec;
  if (!fs::exists(root, ec)) {
    err = "data folder " + q(root) + " does not exist";
    return false;
  }
  if (!fs::is_directory(root, ec)) {
    err = "data folder " + q(root) + " is not a folder";
    return false;
  }
  if (!listEntries(root, true, cl.names, err)) return false;
  if (cl.names.empty()) {
    err = "data folder " + q(root) + " has no class subfolders (expected one subfolder of PNG/JPEG images per class)";
    return false;
  }
  cl.files.assign(cl.names.size(), {});
  for (size_t k = 0; k < cl.names.size(); ++k) {
    std::string dir = root + "/" + cl.names[k];
    if (!listEntries(dir, false, cl.files[k], err)) return false;
    if (cl.files[k].empty()) {
      err = "class folder " + q(dir) + " contains no PNG or JPEG images (.png, .jpg, .jpeg)";
      return false;
    }
    for (auto& f : cl.files[k]) f = dir + "/" + f;
  }
  return true;
}

// Reads a whole file ourselves, so that a missing or unreadable file gets the system's reason and a
// huge one is refused before stb sees it.
bool readBytes(const std::string& path, std::vector<uint8_t>& bytes, std::string& err) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(fopen(path.c_str(), "rb"), fclose);
  if (!f) {
    err = "cannot read image " + q(path) + ": " + strerror(errno);
    return false;
  }
  bytes.clear();
  uint8_t buf[1 << 16];
  size_t got;
  while ((got = fread(buf, 1, sizeof buf, f.get())) > 0) {
    bytes.insert(bytes.end(), buf, buf + got);
    if ((int64_t)bytes.size() > kMaxFileBytes) {
      err = "image " + q(path) + " is too large (more than 1 GiB)";
      return false;
    }
  }
  if (ferror(f.get())) {
    err = "cannot read image " + q(path) + ": " + strerror(errno);
    return false;
  }
  if (bytes.empty()) {
    err = "cannot read image " + q(path) + ": the file is empty";
    return false;
  }
  return true;
}

// A header's size is checked before decoding, so a file that claims a huge image is refused, not allocated.
bool checkImageSize(const std::string& path, int w, int h, std::string& err) {
  if (w > 0 && h > 0 && w <= kMaxSide && h <= kMaxSide && (int64_t)w * h <= kMaxImagePixels) return true;
  err = "image " + q(path) + " is too large: " + std::to_string(w) + "x" + std::to_string(h) + " (at most " + std::to_string(kMaxSide) +
        " pixels a side and " + std::to_string(kMaxImagePixels >> 20) + " Mpixel)";
  return false;
}

// The header only: size and colour channels, refused if stb could not read the file safely or the
// image is too large, before any pixel memory is allocated.
bool readHeader(const std::string& path, const std::vector<uint8_t>& bytes, int& w, int& h, int& comp, std::string& err) {
  if (bytes[0] == 0xFF && !jpegHuffmanTablesFit(bytes)) {  // stb takes anything starting 0xFF (fill bytes) as JPEG
    err = "cannot read image " + q(path) + ": corrupt JPEG (a Huffman table declares more than 256 codes): replace or remove it";
    return false;
  }
  if (!stbi_info_from_memory(bytes.data(), (int)bytes.size(), &w, &h, &comp)) {
    err = "cannot read image " + q(path) + ": " + stbi_failure_reason() + " (not a readable PNG or JPEG file: replace or remove it)";
    return false;
  }
  return checkImageSize(path, w, h, err);
}

using Pixels = std::unique_ptr<uint8_t, void (*)(void*)>;

// Decodes `bytes` into interleaved HWC with `channels` (0: the file's colour channels, alpha dropped).
bool decode(const std::string& path, const std::vector<uint8_t>& bytes, int& channels, int& w, int& h, Pixels& px, std::string& err) {
  int comp = 0, got = 0;
  if (!readHeader(path, bytes, w, h, comp, err)) return false;
  if (channels == 0) channels = comp >= 3 ? 3 : 1;
  px = Pixels(stbi_load_from_memory(bytes.data(), (int)bytes.size(), &w, &h, &got, channels), stbi_image_free);
  if (!px) {
    err = "cannot read image " + q(path) + ": " + stbi_failure_reason() + " (the file is damaged or cut short: replace or remove it)";
    return false;
  }
  return true;
}

// Bilinear resize of an interleaved HWC byte image to CHW bytes, rounded; same rule as image.cpp and
// prepareImage (half-pixel centres, align_corners = false), so a folder image looks as `predict` sees it.
void resizeToChw(const uint8_t* px, int w, int h, int c, int W, int H, uint8_t* out) {
  for (int ch = 0; ch < c; ++ch)
    for (int y = 0; y < H; ++y) {
      float sy = std::max(0.0f, (y + 0.5f) * h / H - 0.5f);
      int y0 = std::min((int)sy, h - 1), y1 = std::min(y0 + 1, h - 1);
      float fy = sy - y0;
      for (int x = 0; x < W; ++x) {
        float sx = std::max(0.0f, (x + 0.5f) * w / W - 0.5f);
        int x0 = std::min((int)sx, w - 1), x1 = std::min(x0 + 1, w - 1);
        float fx = sx - x0;
        auto at = [&](int xx, int yy) { return (float)px[((size_t)yy * w + xx) * c + ch]; };
        float v = (1 - fy) * ((1 - fx) * at(x0, y0) + fx * at(x1, y0)) + fy * ((1 - fx) * at(x0, y1) + fx * at(x1, y1));
        out[((size_t)ch * H + y) * W + x] = (uint8_t)std::clamp((int)std::lround(v), 0, 255);
      }
    }
}

// Same size: only the layout changes, HWC (stb) to CHW (Dataset).
void copyToChw(const uint8_t* px, int w, int h, int c, uint8_t* out) {
  size_t plane = (size_t)w * h;
  for (int ch = 0; ch < c; ++ch)
    for (size_t p = 0; p < plane; ++p) out[ch * plane + p] = px[p * c + ch];
}

// Asked-for channels and size must be usable before any image is read.
bool checkTarget(int channels, int height, int width, std::string& err) {
  if (channels != 0 && channels != 1 && channels != 3) {
    err = "folder data: channels must be 0 (as the first image), 1 or 3, got " + std::to_string(channels);
    return false;
  }
  if ((height == 0) != (width == 0) || height < 0 || width < 0 || height > kMaxSide || width > kMaxSide) {
    err = "folder data: bad image size " + std::to_string(height) + "x" + std::to_string(width) + " (give both height and width, 1-" +
          std::to_string(kMaxSide) + ", or 0x0 for the first image's size)";
    return false;
  }
  return true;
}

// Class names joined for a message; long lists (ImageNet's 1000) are cut so it stays readable.
std::string joinNames(const std::vector<std::string>& names, size_t most = 12) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < most; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > most) s += ", ... (" + std::to_string(names.size() - most) + " more)";
  return s;
}

}  // namespace

// stb_image 2.27 (Debian 12's libstb) writes past its Huffman arrays when a DHT table declares more
// than 256 codes (nothings/stb#1289, fixed in 2.28). This walks the markers as stb reads them (junk
// and fill bytes skipped, segments by their length, entropy-coded data byte by byte) and checks
// every DHT segment stb could process, so such a file is refused before stb sees it.
bool jpegHuffmanTablesFit(const std::vector<uint8_t>& b) {
  auto at = [&](size_t i) -> size_t { return i < b.size() ? b[i] : 0; };  // stb reads zeros past the end
  size_t i = 0;
  while (i < b.size()) {
    if (b[i++] != 0xFF) continue;
    while (i < b.size() && b[i] == 0xFF) ++i;
    if (i >= b.size()) break;
    uint8_t m = b[i++];
    if (m == 0x00 || m == 0x01 || (m >= 0xD0 && m <= 0xD8)) continue;  // stuffed byte, TEM, RSTn, SOI: no length
    if (m == 0xD9) break;                                             // EOI: stb reads no further
    size_t len = at(i) << 8 | at(i + 1);
    if (m == 0xC4) {
      // As stb's DHT loop: tables of 1 + 16 + n bytes while the segment length lasts.
      long left = (long)len - 2;
      for (size_t p = i + 2; left > 0;) {
        size_t q = at(p), n = 0;
        if ((q >> 4) > 1 || (q & 15) > 3) break;  // stb stops at this error
        for (int k = 1; k <= 16; ++k) n += at(p + k);
        if (n > 256) return false;
        p += 17 + n;
        left -= (long)(17 + n);
      }
    }
    i += std::max<size_t>(len, 2);
  }
  return true;
}


bool loadFolder(const std::string& root, int channels, int height, int width, Dataset& out, std::string& err) {
  if (!checkTarget(channels, height, width, err)) return false;
  ClassList cl;
  if (!listClasses(root, cl, err)) return false;
  size_t total = 0;
  for (auto& f : cl.files) total += f.size();
  Dataset d;
  d.classes = (int)cl.names.size();
  d.classNames = cl.names;
  std::vector<uint8_t> bytes;
  size_t per = 0;
  for (size_t k = 0; k < cl.files.size(); ++k)
    for (const auto& path : cl.files[k]) {
      int c = channels, w = 0, h = 0;
      Pixels px(nullptr, stbi_image_free);
      if (!readBytes(path, bytes, err) || !decode(path, bytes, c, w, h, px, err)) return false;
      if (per == 0) {  // the first image fixes what was left open
        d.channels = channels = c;
        d.height = height ? height : h;
        d.width = width ? width : w;
        per = (size_t)d.channels * d.height * d.width;
        if ((uint64_t)total * per > kMaxDatasetBytes) {
          err = "folder data " + q(root) + " is too large: " + std::to_string(total) + " images of " + std::to_string(d.channels) + "x" +
                std::to_string(d.height) + "x" + std::to_string(d.width) + " need more than 16 GiB (give a smaller image size)";
          return false;
        }
        d.pixels.resize(total * per);
        d.labels.reserve(total);
      }
      uint8_t* dst = d.pixels.data() + (size_t)d.count * per;
      if (w == d.width && h == d.height) copyToChw(px.get(), w, h, d.channels, dst);
      else resizeToChw(px.get(), w, h, d.channels, d.width, d.height, dst);
      d.labels.push_back((int64_t)k);
      ++d.count;
    }
  out = std::move(d);
  return true;
}

bool probeFolder(const std::string& root, std::vector<std::string>& classNames, int& channels, int& height, int& width, std::string& err) {
  ClassList cl;
  if (!listClasses(root, cl, err)) return false;
  std::vector<uint8_t> bytes;
  const std::string& first = cl.files[0][0];
  if (!readBytes(first, bytes, err)) return false;
  int comp = 0;
  if (!readHeader(first, bytes, width, height, comp, err)) return false;
  channels = comp >= 3 ? 3 : 1;
  classNames = cl.names;
  return true;
}

bool loadFolderSplit(const std::string& data, bool train, Dataset& out, std::string& err) {
  std::error_code ec;
  std::string trainDir = data + "/train", testDir;
  if (!fs::is_directory(trainDir, ec)) {
    err = "folder data '" + data + "' has no train/ subfolder (expected train/ and test/, each with one subfolder of PNG/JPEG images per class)";
    return false;
  }
  if (train) return loadFolder(trainDir, 0, 0, 0, out, err);
  for (const char* t : {"/test", "/val"})
    if (testDir.empty() && fs::is_directory(data + t, ec)) testDir = data + t;
  if (testDir.empty()) {
    err = "folder data '" + data + "' has no test/ (or val/) subfolder (expected train/ and test/, each with one subfolder of PNG/JPEG images per class)";
    return false;
  }
  std::vector<std::string> trainNames, testNames;
  int c = 0, h = 0, w = 0, tc = 0, th = 0, tw = 0;
  if (!probeFolder(trainDir, trainNames, c, h, w, err) || !probeFolder(testDir, testNames, tc, th, tw, err)) return false;
  if (trainNames != testNames) {
    err = "folder data '" + data + "': the classes of " + testDir + " (" + joinNames(testNames) + ") differ from those of " + trainDir + " (" +
          joinNames(trainNames) + "); both splits need the same class subfolders";
    return false;
  }
  return loadFolder(testDir, c, h, w, out, err);
}

// ---- Segmentation: root/images/NAME.{png,jpg} with root/masks/NAME.png ----

namespace {

// The images of root/images, each with its mask root/masks/<same stem>.<any image extension>.
bool listSegPairs(const std::string& root, std::vector<std::string>& images, std::vector<std::string>& masks, std::string& err) {
  std::vector<std::string> imgNames, maskNames;
  if (!listEntries(root + "/images", false, imgNames, err) || !listEntries(root + "/masks", false, maskNames, err)) return false;
  if (imgNames.empty()) {
    err = "segmentation data " + q(root + "/images") + " holds no PNG or JPEG images";
    return false;
  }
  auto stem = [](const std::string& n) { return n.substr(0, n.rfind('.')); };
  std::map<std::string, std::string> byStem;
  for (const auto& m : maskNames) byStem[stem(m)] = m;
  images.clear();
  masks.clear();
  for (const auto& n : imgNames) {
    auto it = byStem.find(stem(n));
    if (it == byStem.end()) {
      err = "image " + q(root + "/images/" + n) + " has no mask: expected " + q(root + "/masks/" + stem(n) + ".png") +
            " (a greyscale image whose values are the classes)";
      return false;
    }
    images.push_back(root + "/images/" + n);
    masks.push_back(root + "/masks/" + it->second);
  }
  return true;
}

// A mask as one byte per pixel (greyscale; a colour mask's first channel).
bool readMask(const std::string& path, std::vector<uint8_t>& bytes, int& w, int& h, Pixels& px, std::string& err) {
  int c = 1;
  return readBytes(path, bytes, err) && decode(path, bytes, c, w, h, px, err);
}

}  // namespace

bool segValues(const std::string& root, std::vector<int>& values, std::string& err) {
  std::vector<std::string> images, masks;
  if (!listSegPairs(root, images, masks, err)) return false;
  bool seen[256] = {};
  std::vector<uint8_t> bytes;
  for (const auto& m : masks) {
    int w = 0, h = 0;
    Pixels px(nullptr, stbi_image_free);
    if (!readMask(m, bytes, w, h, px, err)) return false;
    for (size_t i = 0; i < (size_t)w * h; ++i) seen[px.get()[i]] = true;
  }
  values.clear();
  for (int v = 0; v < 256; ++v)
    if (seen[v]) values.push_back(v);
  return true;
}

bool loadSegFolder(const std::string& root, const std::vector<int>& values, Dataset& out, std::string& err) {
  std::vector<std::string> images, masks;
  if (!listSegPairs(root, images, masks, err)) return false;
  int cls[256];
  std::fill(cls, cls + 256, -1);
  for (size_t k = 0; k < values.size(); ++k) cls[values[k]] = (int)k;
  Dataset d;
  std::vector<uint8_t> bytes;
  for (size_t i = 0; i < images.size(); ++i) {
    int c = d.count ? d.channels : 0, w = 0, h = 0, mw = 0, mh = 0;
    Pixels px(nullptr, stbi_image_free), mp(nullptr, stbi_image_free);
    if (!readBytes(images[i], bytes, err) || !decode(images[i], bytes, c, w, h, px, err)) return false;
    if (!readMask(masks[i], bytes, mw, mh, mp, err)) return false;
    if (d.count == 0) {
      d.channels = c, d.height = h, d.width = w, d.maskH = h, d.maskW = w;
      if ((uint64_t)images.size() * (c + 8) * w * h > kMaxDatasetBytes) {
        err = "segmentation data " + q(root) + " is too large: " + std::to_string(images.size()) + " images of " + std::to_string(h) + "x" +
              std::to_string(w) + " need more than 16 GiB";
        return false;
      }
      d.pixels.resize(images.size() * (size_t)c * w * h);
      d.labels.resize(images.size() * (size_t)w * h);
    }
    if (w != d.width || h != d.height) {
      err = "image " + q(images[i]) + " is " + std::to_string(h) + "x" + std::to_string(w) + " but " + q(images[0]) + " is " +
            std::to_string(d.height) + "x" + std::to_string(d.width) + ": the images of a segmentation split share one size (height x width)";
      return false;
    }
    if (mw != w || mh != h) {
      err = "mask " + q(masks[i]) + " is " + std::to_string(mh) + "x" + std::to_string(mw) + " but its image is " + std::to_string(h) + "x" +
            std::to_string(w) + " (height x width): a mask needs one value per pixel of its image";
      return false;
    }
    copyToChw(px.get(), w, h, c, d.pixels.data() + (size_t)d.count * c * w * h);
    int64_t* lab = d.labels.data() + (size_t)d.count * w * h;
    for (size_t p = 0; p < (size_t)w * h; ++p) {
      int v = mp.get()[p];
      if (cls[v] < 0) {
        std::string known;
        for (int x : values) known += (known.empty() ? "" : ", ") + std::to_string(x);
        err = "mask " + q(masks[i]) + " holds the value " + std::to_string(v) + " at (" + std::to_string(p % w) + ", " + std::to_string(p / w) +
              "), which no training mask holds (they hold " + known + ")";
        return false;
      }
      lab[p] = cls[v];
    }
    ++d.count;
  }
  for (int v : values) d.classNames.push_back(std::to_string(v));
  out = std::move(d);
  return true;
}

bool loadSegSplit(const std::string& data, bool train, Dataset& out, std::string& err) {
  std::error_code ec;
  std::string trainDir = data + "/train", dir = trainDir;
  if (!train) {
    dir.clear();
    for (const char* t : {"/test", "/val"})
      if (dir.empty() && fs::is_directory(data + t, ec)) dir = data + t;
    if (dir.empty()) {
      err = "segmentation data '" + data + "' has no test/ (or val/) subfolder (expected train/ and test/, each with images/ and masks/)";
      return false;
    }
  }
  // Classes are the training masks' values in increasing order (0/255 masks: classes 0 and 1), as
  // milesial/Pytorch-UNet maps them; the test split is read with the same map.
  std::vector<int> values;
  if (!segValues(trainDir, values, err)) return false;
  return loadSegFolder(dir, values, out, err);
}

bool isSegFolder(const std::string& data) {
  std::error_code ec;
  return fs::is_directory(data + "/train/images", ec) && fs::is_directory(data + "/train/masks", ec);
}

}  // namespace cnnc::rt
