// dataset.cpp: see dataset.h.
#include "dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <cerrno>
#include <cstring>

namespace cnnc::rt {

namespace {

// Reads a whole file through zlib, which passes plain files through unchanged.
bool readMaybeGzip(const std::string& path, std::vector<uint8_t>& out, std::string& err) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) { err = "cannot open '" + path + "': " + strerror(errno); return false; }
  out.clear();
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    int n = gzread(f, buf.data(), (unsigned)buf.size());
    if (n < 0) {
      int code;
      err = path + ": " + gzerror(f, &code) + " (the file is corrupt or truncated)";
      gzclose(f);
      return false;
    }
    if (n == 0) break;
    out.insert(out.end(), buf.begin(), buf.begin() + n);
  }
  // gzread stops quietly at a truncated gzip stream; gzclose reports it.
  int rc = gzclose(f);
  if (rc != Z_OK && rc != Z_BUF_ERROR) { err = path + ": truncated or corrupt gzip data"; return false; }
  if (rc == Z_BUF_ERROR) { err = path + ": truncated gzip data"; return false; }
  return true;
}

uint32_t be32(const uint8_t* p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

}  // namespace

bool loadIdx(const std::string& imagesPath, const std::string& labelsPath, Dataset& out, std::string& err) {
  std::vector<uint8_t> im, lb;
  if (!readMaybeGzip(imagesPath, im, err) || !readMaybeGzip(labelsPath, lb, err)) return false;
  if (im.size() < 16 || be32(im.data()) != 0x00000803) {
    err = imagesPath + ": not an IDX image file (expected magic 00 00 08 03 and 3 dimensions)";
    return false;
  }
  if (lb.size() < 8 || be32(lb.data()) != 0x00000801) {
    err = labelsPath + ": not an IDX label file (expected magic 00 00 08 01)";
    return false;
  }
  uint64_t n = be32(im.data() + 4), h = be32(im.data() + 8), w = be32(im.data() + 12), nl = be32(lb.data() + 4);
  if (h == 0 || w == 0 || h > 4096 || w > 4096) { err = imagesPath + ": image size " + std::to_string(h) + "x" + std::to_string(w) + " is not plausible"; return false; }
  if (im.size() != 16 + n * h * w) {
    err = imagesPath + ": header says " + std::to_string(n) + " images of " + std::to_string(h) + "x" + std::to_string(w) + " (" +
          std::to_string(16 + n * h * w) + " bytes) but the data has " + std::to_string(im.size()) + " bytes";
    return false;
  }
  if (lb.size() != 8 + nl) { err = labelsPath + ": header says " + std::to_string(nl) + " labels but the data has " + std::to_string(lb.size() - 8); return false; }
  if (n != nl) { err = imagesPath + " has " + std::to_string(n) + " images but " + labelsPath + " has " + std::to_string(nl) + " labels"; return false; }
  Dataset d;
  d.count = (int64_t)n;
  d.channels = 1;
  d.height = (int)h;
  d.width = (int)w;
  d.pixels.assign(im.begin() + 16, im.end());
  d.labels.resize(n);
  int maxLabel = 0;
  for (uint64_t i = 0; i < n; ++i) {
    d.labels[i] = lb[8 + i];
    maxLabel = std::max(maxLabel, (int)lb[8 + i]);
  }
  d.classes = std::max(10, maxLabel + 1);
  out = std::move(d);
  return true;
}

bool loadCifar10(const std::vector<std::string>& files, Dataset& out, std::string& err) {
  Dataset d;
  d.channels = 3;
  d.height = d.width = 32;
  d.classNames = {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};
  for (const auto& f : files) {
    std::vector<uint8_t> data;
    if (!readMaybeGzip(f, data, err)) return false;
    if (data.empty() || data.size() % 3073) {
      err = f + ": " + std::to_string(data.size()) + " bytes is not a whole number of CIFAR-10 records (1 label + 3072 pixels each)";
      return false;
    }
    for (size_t r = 0; r < data.size() / 3073; ++r) {
      uint8_t label = data[r * 3073];
      if (label > 9) { err = f + ": record " + std::to_string(r) + " has label " + std::to_string(label) + " (CIFAR-10 labels are 0-9)"; return false; }
      d.labels.push_back(label);
      d.pixels.insert(d.pixels.end(), data.begin() + r * 3073 + 1, data.begin() + (r + 1) * 3073);
    }
  }
  d.count = (int64_t)d.labels.size();
  out = std::move(d);
  return true;
}

bool loadFashionMnist(const std::string& root, bool train, Dataset& out, std::string& err) {
  std::string pre = root + "/" + (train ? "train" : "t10k");
  if (!loadIdx(pre + "-images-idx3-ubyte.gz", pre + "-labels-idx1-ubyte.gz", out, err)) {
    err += "\nhint: Fashion-MNIST comes with Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist)";
    return false;
  }
  out.classNames = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};
  return true;
}

bool checkFits(const Dataset& d, const Preprocess& p, std::string& err) {
  if (d.channels != p.C && !(d.channels == 1 && p.C == 3) && !(d.channels == 3 && p.C == 1)) {
    err = "images have " + std::to_string(d.channels) + " channels but the network takes " + std::to_string(p.C);
    return false;
  }
  if (d.segmentation() && !p.resize && (d.height != p.H || d.width != p.W)) {
    err = "segmentation images are " + std::to_string(d.height) + "x" + std::to_string(d.width) + " but the network takes " + std::to_string(p.H) + "x" +
          std::to_string(p.W) + ": give --resize (masks are resized to the nearest pixel), or compile the net for this size (cnnc --input-shape " +
          std::to_string(p.C) + "," + std::to_string(d.height) + "," + std::to_string(d.width) + ")";
    return false;
  }
  if (!p.resize && (d.height > p.H || d.width > p.W)) {
    err = "images are " + std::to_string(d.height) + "x" + std::to_string(d.width) + " but the network takes " + std::to_string(p.H) + "x" +
          std::to_string(p.W) + ": padding cannot shrink them (use --resize)";
    return false;
  }
  if ((!p.mean.empty() && (int)p.mean.size() != p.C) || (!p.std.empty() && (int)p.std.size() != p.C)) {
    err = "mean and std need one value per input channel (" + std::to_string(p.C) + ")";
    return false;
  }
  return true;
}

namespace {

struct Draw {
  int dx = 0, dy = 0;
  bool flip = false;
};

// The augmentation of one image: the same draws for its pixels and (segmentation) its labels.
Draw drawAugmentation(const Preprocess& p, bool augment, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Draw a;
  if (augment && p.cropPad > 0) {
    std::uniform_int_distribution<int> u(-p.cropPad, p.cropPad);
    a.dx = u(rng);
    a.dy = u(rng);
  }
  if (augment && p.flip) a.flip = std::uniform_int_distribution<int>(0, 1)(rng) == 1;
  return a;
}

}  // namespace

void prepareLabels(const Dataset& d, int64_t i, const Preprocess& p, bool augment, uint64_t seed, int64_t* out) {
  Draw a = drawAugmentation(p, augment, seed);  // segmentation has no crop (preprocessFor): a flip at most
  const int64_t* src = d.labels.data() + (size_t)i * d.maskH * d.maskW;
  for (int oy = 0; oy < p.outH; ++oy)
    for (int ox = 0; ox < p.outW; ++ox) {
      // output pixel -> input pixel -> (flipped) -> mask pixel, each step nearest (PyTorch's rule:
      // floor(dst * in / out))
      int y = (int)((int64_t)oy * p.H / p.outH), x = (int)((int64_t)ox * p.W / p.outW);
      if (a.flip) x = p.W - 1 - x;
      int sy = (int)((int64_t)y * d.maskH / p.H), sx = (int)((int64_t)x * d.maskW / p.W);
      out[(size_t)oy * p.outW + ox] = src[(size_t)sy * d.maskW + sx];
    }
}

void prepareImage(const Dataset& d, int64_t i, const Preprocess& p, bool augment, uint64_t seed, float* out) {
  const uint8_t* src = d.pixels.data() + (size_t)i * d.channels * d.height * d.width;
  Draw a = drawAugmentation(p, augment, seed);
  int dx = a.dx, dy = a.dy;
  bool flip = a.flip;
  int offY = p.resize ? 0 : (p.H - d.height) / 2, offX = p.resize ? 0 : (p.W - d.width) / 2;
  auto pixel = [&](int c, int y, int x) -> float {  // source value at (y, x) of the source image
    if (y < 0 || x < 0 || y >= d.height || x >= d.width) return 0.0f;
    if (d.channels == 3 && p.C == 1) {
      const size_t plane = (size_t)d.height * d.width;
      return (src[(size_t)y * d.width + x] + src[plane + (size_t)y * d.width + x] + src[2 * plane + (size_t)y * d.width + x]) / 765.0f;
    }
    int sc = d.channels == 1 ? 0 : c;
    return src[((size_t)sc * d.height + y) * d.width + x] / 255.0f;
  };
  for (int c = 0; c < p.C; ++c) {
    double m = c < (int)p.mean.size() ? p.mean[c] : 0.0, s = c < (int)p.std.size() ? p.std[c] : 1.0;
    for (int y = 0; y < p.H; ++y)
      for (int x = 0; x < p.W; ++x) {
        int ty = y + dy, tx = flip ? p.W - 1 - x : x;
        tx += dx;
        float v;
        if (p.resize) {
          if (ty < 0 || tx < 0 || ty >= p.H || tx >= p.W) v = 0;
          else {
            float sy = std::max(0.0f, (ty + 0.5f) * d.height / p.H - 0.5f), sx = std::max(0.0f, (tx + 0.5f) * d.width / p.W - 0.5f);
            int y0 = std::min((int)sy, d.height - 1), x0 = std::min((int)sx, d.width - 1);
            int y1 = std::min(y0 + 1, d.height - 1), x1 = std::min(x0 + 1, d.width - 1);
            float fy = sy - y0, fx = sx - x0;
            v = (1 - fy) * ((1 - fx) * pixel(c, y0, x0) + fx * pixel(c, y0, x1)) + fy * ((1 - fx) * pixel(c, y1, x0) + fx * pixel(c, y1, x1));
          }
        } else {
          v = pixel(c, ty - offY, tx - offX);
        }
        out[((size_t)c * p.H + y) * p.W + x] = (float)((v - m) / s);
      }
  }
}

std::vector<int64_t> epochOrder(int64_t count, uint64_t seed, int64_t epoch, bool shuffle) {
  std::vector<int64_t> o(count);
  for (int64_t i = 0; i < count; ++i) o[i] = i;
  if (!shuffle) return o;
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + (uint64_t)epoch * 0xD1B54A32D192ED03ull + 1);
  for (int64_t i = count - 1; i > 0; --i) std::swap(o[i], o[std::uniform_int_distribution<int64_t>(0, i)(rng)]);
  return o;
}

BatchLoader::BatchLoader(const Dataset& d, Preprocess p, int64_t batch, bool shuffle, bool augment, bool dropLast, uint64_t seed)
    : d_(d), p_(std::move(p)), batch_(batch), shuffle_(shuffle), augment_(augment), dropLast_(dropLast), seed_(seed) {}

BatchLoader::~BatchLoader() { stop(); }

int64_t BatchLoader::batchesPerEpoch() const { return dropLast_ ? d_.count / batch_ : (d_.count + batch_ - 1) / batch_; }

void BatchLoader::produce(int64_t b, std::vector<float>& img, std::vector<int64_t>& lab) {
  int64_t lo = b * batch_, hi = std::min(d_.count, lo + batch_), m = hi - lo;
  hi = lo + m * (shard_ + 1) / shards_;
  lo = lo + m * shard_ / shards_;
  size_t per = (size_t)p_.C * p_.H * p_.W;
  img.resize((size_t)(hi - lo) * per);
  size_t perLab = d_.segmentation() ? (size_t)p_.outH * p_.outW : 1;
  lab.resize((size_t)(hi - lo) * perLab);
  for (int64_t k = lo; k < hi; ++k) {
    int64_t idx = order_[k];
    // Augmentation depends only on (seed, epoch, position): reproducible from any starting batch.
    uint64_t s = seed_ ^ ((uint64_t)epoch_ * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)k * 0xBF58476D1CE4E5B9ull);
    prepareImage(d_, idx, p_, augment_, s, img.data() + (size_t)(k - lo) * per);
    if (d_.segmentation()) prepareLabels(d_, idx, p_, augment_, s, lab.data() + (size_t)(k - lo) * perLab);
    else lab[k - lo] = d_.labels[idx];
  }
}

void BatchLoader::stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) worker_.join();
}

void BatchLoader::start(int64_t epoch, int64_t first) {
  stop();
  epoch_ = epoch;
  order_ = epochOrder(d_.count, seed_, epoch, shuffle_);
  nextBatch_ = first;
  end_ = batchesPerEpoch();
  ready_ = false;
  quit_ = false;
  // One batch ahead: the worker fills the buffer, next() takes it and wakes the worker.
  worker_ = std::thread([this] {
    for (int64_t b = nextBatch_; b < end_; ++b) {
      std::vector<float> img;
      std::vector<int64_t> lab;
      produce(b, img, lab);
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return !ready_ || quit_; });
      if (quit_) return;
      bufImg_ = std::move(img);
      bufLab_ = std::move(lab);
      ready_ = true;
      cv_.notify_all();
    }
  });
}

bool BatchLoader::next(std::vector<float>& images, std::vector<int64_t>& labels) {
  if (nextBatch_ >= end_) return false;
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return ready_; });
  images = std::move(bufImg_);
  labels = std::move(bufLab_);
  ready_ = false;
  ++nextBatch_;
  cv_.notify_all();
  return true;
}

}  // namespace cnnc::rt
