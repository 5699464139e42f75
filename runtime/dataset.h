// dataset.h: labelled image data sets in memory and the batches a training step takes.
//
// Formats: IDX (MNIST, Fashion-MNIST; gzip or plain), CIFAR-10 binary, a folder with one
// subfolder of PNG/JPEG images per class, and segmentation folders (images/ and masks/: a class
// per pixel). Images are kept as uint8 CHW; a batch is made by
// preparing each image for the network's input (zero-pad or bilinear resize, grey to 3 channels,
// [0,1] scaling, per-channel normalisation) plus optional augmentation (random crop after padding,
// horizontal flip), all drawn from a seeded generator per (epoch, index) so that any batch of any
// epoch can be rebuilt exactly: this is what makes resume exact.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cnnc::rt {

struct Dataset {
  int64_t count = 0;
  int channels = 1, height = 0, width = 0;
  std::vector<uint8_t> pixels;   // count x C x H x W
  std::vector<int64_t> labels;   // count, or count x maskH x maskW for segmentation
  int classes = 10;
  std::vector<std::string> classNames;
  int maskH = 0, maskW = 0;      // segmentation: a label per pixel of each image (its own size)
  bool segmentation() const { return maskH > 0; }
  int64_t labelsPerImage() const { return segmentation() ? (int64_t)maskH * maskW : 1; }
  // Keeps the first n images (--limit, the training-accuracy sample).
  void truncate(int64_t n) {
    if (n >= count) return;
    count = n;
    labels.resize((size_t)(n * labelsPerImage()));
    pixels.resize((size_t)n * channels * height * width);
  }
};

bool loadIdx(const std::string& imagesPath, const std::string& labelsPath, Dataset& out, std::string& err);
bool loadCifar10(const std::vector<std::string>& files, Dataset& out, std::string& err);
// The Debian package's files: /usr/share/datasets/fashion-mnist/{train,t10k}-*.gz
bool loadFashionMnist(const std::string& root, bool train, Dataset& out, std::string& err);

// Folder format (dataset_folder.cpp): root/<class>/<image>.{png,jpg,jpeg}, extensions in any case.
// Classes are the non-hidden subfolders in sorted byte order (labels 0..K-1, classNames = folder
// names); images are taken in sorted order within each class; other files are ignored.
// channels: 0 = as the first image (grey -> 1, colour -> 3, alpha dropped), or 1 or 3 to convert.
// height x width: 0 x 0 = the first image's size; images of another size are bilinearly resized
// (half-pixel centres, as image.cpp). Errors name the path: root missing or not a folder, no class
// subfolders, a class folder without images, an unreadable, corrupt or too large image.
bool loadFolder(const std::string& root, int channels, int height, int width, Dataset& out, std::string& err);
// What loadFolder(root, 0, 0, 0) would take without decoding every image: the class names and the
// first image's channels and size (so a test split can be made to match its train split).
bool probeFolder(const std::string& root, std::vector<std::string>& classNames, int& channels, int& height, int& width, std::string& err);
// One split of `data`/train and `data`/test (or `data`/val), each with class subfolders. train/ fixes the
// classes, channels and size (as loadFolder(root, 0, 0, 0)); test/ must have the same class names (the
// message lists both) and is converted to the train split's channels and size, so both fit a net alike.
bool loadFolderSplit(const std::string& data, bool train, Dataset& out, std::string& err);

// Segmentation folders (dataset_folder.cpp): root/images/NAME.{png,jpg,jpeg} and
// root/masks/NAME.{png,...}, a greyscale mask of the image's size. The classes are the values the
// training masks hold, in increasing order (0/255 masks: classes 0 and 1, as milesial/Pytorch-UNet
// maps them); `data`/test (or val) is read with the training split's map, and a value it does not
// know is an error naming the file and pixel. All images of a split share one size.
bool isSegFolder(const std::string& data);  // data/train/images and data/train/masks exist
bool loadSegSplit(const std::string& data, bool train, Dataset& out, std::string& err);

struct Preprocess {
  int C = 1, H = 28, W = 28;          // the network's input
  bool resize = false;                // false: centre with zero padding (source must fit)
  std::vector<double> mean, std;      // per channel, after scaling to [0,1]
  int cropPad = 0;                    // augmentation: pad by this much, then random crop
  bool flip = false;                  // augmentation: random horizontal flip
  int outH = 0, outW = 0;             // segmentation: the network's output size (labels per pixel)
};

// Checks that images of `d` can become the network's input.
bool checkFits(const Dataset& d, const Preprocess& p, std::string& err);

// Writes image i of `d` into out (C*H*W floats), with augmentation from `seed` when `augment`.
void prepareImage(const Dataset& d, int64_t i, const Preprocess& p, bool augment, uint64_t seed, float* out);
// Segmentation: image i's labels at the network's output size (outH x outW), resized nearest and
// flipped exactly as prepareImage flips the image for the same seed.
void prepareLabels(const Dataset& d, int64_t i, const Preprocess& p, bool augment, uint64_t seed, int64_t* out);

// The order of epoch e: a Fisher-Yates shuffle from a generator seeded by (seed, e).
std::vector<int64_t> epochOrder(int64_t count, uint64_t seed, int64_t epoch, bool shuffle);

// Batches of one epoch, prepared on a background thread while the caller trains on the previous one.
class BatchLoader {
public:
  BatchLoader(const Dataset& d, Preprocess p, int64_t batch, bool shuffle, bool augment, bool dropLast, uint64_t seed);
  ~BatchLoader();
  int64_t batchesPerEpoch() const;
  // Data-parallel training and evaluation: this rank prepares only its slice of every batch,
  // positions [lo + m*r/N, lo + m*(r+1)/N) of a batch [lo, lo+m) (m = batch, or less at the end),
  // with the same order and augmentation the single process draws for those positions.
  void setShard(int r, int N) { shard_ = r; shards_ = N; }
  // Starts epoch `epoch` at batch `first` (for resume).
  void start(int64_t epoch, int64_t first = 0);
  // Blocks until the next batch is ready; false at the end of the epoch.
  bool next(std::vector<float>& images, std::vector<int64_t>& labels);

private:
  void produce(int64_t b, std::vector<float>& img, std::vector<int64_t>& lab);
  void stop();
  const Dataset& d_;
  Preprocess p_;
  int64_t batch_;
  bool shuffle_, augment_, dropLast_;
  uint64_t seed_;
  int shard_ = 0, shards_ = 1;
  int64_t epoch_ = 0, nextBatch_ = 0, end_ = 0;
  std::vector<int64_t> order_;
  std::thread worker_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool ready_ = false, quit_ = false;
  std::vector<float> bufImg_;
  std::vector<int64_t> bufLab_;
};

}  // namespace cnnc::rt
