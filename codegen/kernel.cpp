// kernel.cpp: kernel identity (signature, function name).
#include "kernel.h"

#include "common/fnv1a.h"
#include "ops/registry.h"

#include <cstdio>
#include <sstream>

namespace cnnc::codegen {

const char* kernelKindName(KernelKind k) { return kernelEntry(k).name; }

Act actOf(const Node& n) { return n.op == OpKind::Activation ? n.attrs.act : Act(); }

bool outputIsBatched(KernelKind k) { return kernelEntry(k).batched; }

std::string KernelSpec::key() const {
  KernelSpec k = *this;
  k.packedWeights = false;
  std::string s = k.signature();
  return s.substr(0, s.find(" | "));
}

std::string KernelSpec::signature() const {
  std::ostringstream o;
  const Attrs& a = attrs;
  o << kernelKindName(kind) << " in=" << dimsStr(in);
  for (const auto& e : extraIns) o << "+" << dimsStr(e);
  o << " out=" << dimsStr(out) << " act=" << act.str();
  switch (kind) {
    case KernelKind::Conv:
      o << " k=" << a.kernel[0] << "x" << a.kernel[1] << " s=" << a.stride[0] << "x" << a.stride[1] << " p=" << a.pad[0] << "x"
        << a.pad[1] << " d=" << a.dilation[0] << "x" << a.dilation[1] << " g=" << a.groups << " res=" << residual << (packedWeights ? " packed" : "");
      break;
    case KernelKind::ConvBackData:
    case KernelKind::ConvBackWeight:
    case KernelKind::ConvTranspose:
      o << " k=" << a.kernel[0] << "x" << a.kernel[1] << " s=" << a.stride[0] << "x" << a.stride[1] << " p=" << a.pad[0] << "x"
        << a.pad[1] << " d=" << a.dilation[0] << "x" << a.dilation[1] << " g=" << a.groups;
      break;
    case KernelKind::Slice:
    case KernelKind::ChunkBack: o << " start=" << a.size; break;
    case KernelKind::ChannelShuffle: o << " groups=" << a.groups; break;
    case KernelKind::Upsample:
    case KernelKind::UpsampleBack: {
      char b[96];
      snprintf(b, sizeof b, " mode=%s%s scale=%.17gx%.17g", a.resample == Attrs::Resample::Bilinear ? "bilinear" : "nearest",
               a.alignCorners ? " align_corners" : "", a.upScale[0], a.upScale[1]);
      o << b;
      break;
    }
    case KernelKind::Pad:
    case KernelKind::Crop: o << " shift=" << a.pad[0] << "x" << a.pad[1]; break;
    case KernelKind::GNStats:
    case KernelKind::GNApply:
    case KernelKind::GNBackData:
    case KernelKind::GNBackGamma: {
      char b[64];
      snprintf(b, sizeof b, " groups=%lld eps=%.9g affine=%d%s", (long long)a.groups, a.eps, (int)a.bias, a.normChannels ? " over=channels" : "");
      o << b;
      break;
    }
    case KernelKind::DropoutFwd:
    case KernelKind::DropoutBack:
      o << " p=" << a.p;
      if (a.dropUnit != Attrs::DropUnit::Element) o << (a.dropUnit == Attrs::DropUnit::Channel ? " unit=channel" : " unit=sample");
      break;
    case KernelKind::BNApply:
    case KernelKind::BNBackParams:
    case KernelKind::BNBackData: {
      char b[64];
      snprintf(b, sizeof b, " eps=%.9g", a.eps);
      o << b;
      if (!extraIns.empty()) o << " pool=" << a.kernel[0] << "x" << a.kernel[1];
      if (residual) o << " res=1";
      break;
    }
    case KernelKind::MaxPool:
    case KernelKind::AvgPool:
    case KernelKind::MaxPoolBack:
    case KernelKind::AvgPoolBack:
      o << " k=" << a.kernel[0] << "x" << a.kernel[1] << " s=" << a.stride[0] << "x" << a.stride[1] << " p=" << a.pad[0] << "x"
        << a.pad[1] << " d=" << a.dilation[0] << "x" << a.dilation[1] << " ceil=" << a.ceil << " cip=" << a.countIncludePad;
      break;
    case KernelKind::LRN:
    case KernelKind::LrnBack: {
      char b[128];
      snprintf(b, sizeof b, " size=%lld alpha=%.9g beta=%.9g k=%.9g", (long long)a.size, a.alpha, a.beta, a.k);
      o << b;
      break;
    }
    case KernelKind::PRelu:
    case KernelKind::PReluBackData:
    case KernelKind::PReluBackWeight: o << " slopes=" << a.out; break;
    default: break;
  }
  o << " | " << schedule.str();
  return o.str();
}

std::string KernelSpec::functionName() const {
  // FNV-1a (common/fnv1a.h): stable across runs and platforms, unlike std::hash.
  return std::string("k_") + kernelKindName(kind) + "_" + fnv1aHex(signature());
}

}  // namespace cnnc::codegen
