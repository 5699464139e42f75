// frontend.cpp: see frontend.h.
#include "frontend.h"

#include <pthread.h>

#include <functional>

namespace cnnc {

static void* trampoline(void* p) {
  (*static_cast<std::function<void()>*>(p))();
  return nullptr;
}

static void runWithBigStack(std::function<void()> fn) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, size_t(512) << 20);
  pthread_t t;
  if (pthread_create(&t, &attr, trampoline, &fn) != 0) {
    fn();  // fall back to the current thread
  } else {
    pthread_join(t, nullptr);
  }
  pthread_attr_destroy(&attr);
}

void runFrontend(const std::string& path, const FrontendOptions& opts, FrontendResult& out) {
  out.diags = std::make_unique<Diagnostics>(out.sm);
  out.diags->warningsAsErrors = opts.warningsAsErrors;
  out.diags->suppressWarnings = opts.suppressWarnings;
  out.diags->color = opts.color;
  runWithBigStack([&] {
    try {
      out.parsed = loadProgram(path, out.sm, *out.diags, out.program);
      if (!out.parsed || opts.stopAfterParse) {
        out.ok = out.parsed;
        return;
      }
      out.ok = elaborate(out.program, out.sm, *out.diags, opts.elab, out.graph) && out.diags->errors() == 0;
    } catch (const std::bad_alloc&) {
      out.diags->error({}, "out of memory while compiling " + path);
      out.ok = false;
    } catch (const std::exception& e) {
      out.diags->error({}, std::string("internal compiler error: ") + e.what(), "please report this with the input file");
      out.ok = false;
    }
  });
}

}  // namespace cnnc
