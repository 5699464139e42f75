// atomic_file.h: replacing a file so that a reader (or a crash) sees the old content or the new,
// never half of it: write a temporary file in the same folder, sync it, rename it over the target.
// On any failure the temporary is removed and the target is left as it was.
//
// Functions return 0 or an errno value, so each caller words its own error message.
#pragma once
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

namespace cnnc {

// The name a program other than this one (a linker, Halide) writes `path` under before
// moveIntoPlace: "<path>.tmp.<pid>".
inline std::string tempPathFor(const std::string& path) { return path + ".tmp." + std::to_string(getpid()); }

// Renames the finished temporary `tmp` over `path`; on failure removes `tmp`. 0 or errno.
inline int moveIntoPlace(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) == 0) return 0;
  int e = errno;
  unlink(tmp.c_str());
  errno = e;
  return e;
}

struct AtomicWrite {
  int error = 0;                  // errno of the first failure; 0: the new file is in place
  bool folderSyncFailed = false;  // the new file is in place, but syncing its folder failed (EIO)
  explicit operator bool() const { return error == 0; }
};

// Writes `path` through a fresh temporary file in its folder (".<name>.tmp.<pid>.<n>.<salt>",
// created exclusively): `write` fills it (false: failed, with errno set), then it is flushed,
// synced and renamed over `path`. With `syncFolder` the folder is synced after the rename too, so
// the rename itself survives a power cut; a folder that cannot be synced (EINVAL on some file
// systems) is not an error, an I/O error is (folderSyncFailed).
inline AtomicWrite writeFileAtomically(const std::string& path, const std::function<bool(std::FILE*)>& write, bool syncFolder = false) {
  AtomicWrite r;
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) { r.error = EISDIR; return r; }
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty()) { r.error = EISDIR; return r; }
  static std::atomic<unsigned> counter{0};
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    unsigned long salt = (unsigned long)std::chrono::steady_clock::now().time_since_epoch().count();
    tmp = (slash == std::string::npos ? std::string() : path.substr(0, slash + 1)) + "." + base + ".tmp." + std::to_string(getpid()) + "." +
          std::to_string(counter++) + "." + std::to_string(salt % 100000);
    fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) { r.error = errno; return r; }
  std::FILE* f = fdopen(fd, "wb");
  if (!f) {
    r.error = errno;
    close(fd);
    unlink(tmp.c_str());
    return r;
  }
  auto fail = [&](int e) {
    if (f) std::fclose(f);
    unlink(tmp.c_str());
    r.error = e ? e : EIO;
    return r;
  };
  errno = 0;
  if (!write(f)) return fail(errno);
  if (std::fflush(f) != 0) return fail(errno);
  if (fsync(fileno(f)) != 0) return fail(errno);
  std::FILE* g = f;
  f = nullptr;
  if (std::fclose(g) != 0) return fail(errno);
  if (std::rename(tmp.c_str(), path.c_str()) != 0) return fail(errno);
  if (syncFolder) {
    int dfd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      int rc = fsync(dfd);
      int e = errno;
      close(dfd);
      if (rc != 0 && e == EIO) r.error = EIO, r.folderSyncFailed = true;
    }
  }
  return r;
}

// The same with the whole content at hand.
inline AtomicWrite writeFileAtomically(const std::string& path, const std::string& data, bool syncFolder = false) {
  return writeFileAtomically(path, [&](std::FILE* f) { return std::fwrite(data.data(), 1, data.size(), f) == data.size(); }, syncFolder);
}

}  // namespace cnnc
