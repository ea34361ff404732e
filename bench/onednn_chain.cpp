// vitint-onednn-chain: every matmul of a ViT/DeiT forward pass as static-shape
// oneDNN int8 primitives (u8 activations x s8 weights, int32 accumulation,
// weights prepacked in the layout the primitive asks for), and nothing else:
// no softmax, LayerNorm, GELU, residual adds, im2col or token rearrangement.
// It is a lower bound that a full int8 engine built on oneDNN could not beat,
// and the yardstick for libvitint's GEMMs (docs/speed.md). Without VNNI its
// products are not exact (Chain::probe_exact): every run reports whether they
// are ("int8_exact").
//
// Per block (12 blocks, distinct weights): qkv [T,D]x[D,3D] -> u8; q.k^T as a
// batched matmul over batch*heads [N,dh]x[dh,N] -> s32 (softmax input);
// attn@v batched [N,N]x[N,dh] -> u8; proj [T,D]x[D,D] -> s32 (residual add
// input); fc1 [T,D]x[D,4D] -> u8; fc2 [T,4D]x[4D,D] -> s32. Plus the patch
// embedding as a matmul over im2col'ed patches [P,3*16*16]x[768,D] -> u8 and
// the head on the class tokens [B,D]x[D,1000] -> s32. T = batch*N tokens.
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "timing.h"

namespace {

const char* kUsage = R"(usage: vitint-onednn-chain --arch NAME [--threads T] [--batch B] [--iterations N]
                           [--warmup W] [--isa ISA] [--per-op] [--json]

Runs all matmuls of a ViT forward pass as oneDNN int8 primitives, nothing else.
  --arch NAME     deit_{tiny,small,base}_patch16_224 or vit_{tiny,small,base}_patch16_224
  --threads T     OpenMP threads of oneDNN (default 1)
  --batch B       images per run (default 1)
  --iterations N  timed runs (default 100), after W warm-up runs (default max(5, N/10))
  --isa ISA       highest ISA oneDNN may use: all (default), avx512_core_amx,
                  avx512_core_vnni, avx512_core, avx2_vnni, avx2
                  (the ONEDNN_MAX_CPU_ISA environment variable works too)
  --per-op        also time each kind of matmul separately
  --json          print the result as JSON on stdout
)";

struct Arch {
  int embed_dim, num_heads, depth;
};

const std::map<std::string, Arch> kArchs = {
    {"deit_tiny_patch16_224", {192, 3, 12}},  {"deit_small_patch16_224", {384, 6, 12}},
    {"deit_base_patch16_224", {768, 12, 12}}, {"vit_tiny_patch16_224", {192, 3, 12}},
    {"vit_small_patch16_224", {384, 6, 12}},  {"vit_base_patch16_224", {768, 12, 12}},
};
constexpr int kImage = 224, kPatch = 16, kChannels = 3, kClasses = 1000;

const std::map<std::string, dnnl::cpu_isa> kIsas = {
    {"all", dnnl::cpu_isa::all},
    {"avx512_core_amx", dnnl::cpu_isa::avx512_core_amx},
    {"avx512_core_bf16", dnnl::cpu_isa::avx512_core_bf16},
    {"avx512_core_vnni", dnnl::cpu_isa::avx512_core_vnni},
    {"avx512_core", dnnl::cpu_isa::avx512_core},
    {"avx2_vnni", dnnl::cpu_isa::avx2_vnni},
    {"avx2", dnnl::cpu_isa::avx2},
};

std::string isa_name(dnnl::cpu_isa isa) {
  for (const auto& [name, value] : kIsas)
    if (value == isa) return name;
  return "other(" + std::to_string(static_cast<int>(isa)) + ")";
}

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using dims = dnnl::memory::dims;

// A byte arena whose storage outlives every dnnl::memory that points into it.
struct Buffer {
  std::vector<uint8_t> bytes;
  explicit Buffer(size_t n, std::mt19937& rng) : bytes(n) {
    for (auto& b : bytes) b = static_cast<uint8_t>(rng() & 0xff);
  }
  void* data() { return bytes.data(); }
};

struct Op {
  std::string kind;  // "qkv", "qk", "av", "proj", "fc1", "fc2", "patch", "head"
  dnnl::matmul prim;
  std::unordered_map<int, dnnl::memory> args;
  std::string impl;
  double macs = 0;
};

class Chain {
 public:
  Chain(const Arch& a, int batch) : eng_(dnnl::engine::kind::cpu, 0), stream_(eng_), rng_(1234) {
    const int d = a.embed_dim, h = a.num_heads, dh = d / h, hidden = 4 * d;
    const int patches = (kImage / kPatch) * (kImage / kPatch);
    const int n = patches + 1;
    const int64_t t = static_cast<int64_t>(batch) * n, bh = static_cast<int64_t>(batch) * h;
    const int64_t pk = kChannels * kPatch * kPatch;
    tokens_ = t;
    dim_ = d;

    // Activation arenas shared by all blocks (as an engine's would be).
    Buffer& im2col = buffer(static_cast<size_t>(batch * patches * pk));
    Buffer& patch_out = buffer(static_cast<size_t>(batch * patches * d));
    Buffer& ln_out = buffer(static_cast<size_t>(t * d));
    Buffer& qkv_out = buffer(static_cast<size_t>(t * 3 * d));
    Buffer& logits = buffer(static_cast<size_t>(bh * n * n * 4));
    Buffer& probs = buffer(static_cast<size_t>(bh * n * n));
    Buffer& ctx = buffer(static_cast<size_t>(t * d));
    Buffer& resid = buffer(static_cast<size_t>(t * d * 4));
    Buffer& fc1_out = buffer(static_cast<size_t>(t * hidden));
    Buffer& head_in = buffer(static_cast<size_t>(batch * d));
    Buffer& head_out = buffer(static_cast<size_t>(batch * kClasses * 4));

    linear("patch", batch * patches, pk, d, im2col.data(), dt::u8, patch_out.data());
    uint8_t* q = static_cast<uint8_t*>(qkv_out.data());
    uint8_t* k = q + t * d;
    uint8_t* v = k + t * d;
    for (int b = 0; b < a.depth; ++b) {
      linear("qkv", t, d, 3 * d, ln_out.data(), dt::u8, qkv_out.data());
      // q [bh][n][dh] x k^T: k is stored [bh][n][dh], i.e. k^T [bh][dh][n] in "acb".
      batched("qk", {bh, n, dh}, q, {bh, dh, n}, tag::acb, k, dt::s32, logits.data());
      batched("av", {bh, n, n}, probs.data(), {bh, n, dh}, tag::abc, v, dt::u8, ctx.data());
      linear("proj", t, d, d, ctx.data(), dt::s32, resid.data());
      linear("fc1", t, d, hidden, ln_out.data(), dt::u8, fc1_out.data());
      linear("fc2", t, hidden, d, fc1_out.data(), dt::s32, resid.data());
    }
    linear("head", batch, d, kClasses, head_in.data(), dt::s32, head_out.data());
  }

  void run() {
    for (auto& op : ops_) op.prim.execute(stream_, op.args);
    stream_.wait();
  }
  void run_kind(const std::string& kind) {
    for (auto& op : ops_)
      if (op.kind == kind) op.prim.execute(stream_, op.args);
    stream_.wait();
  }
  double macs() const {
    double m = 0;
    for (const auto& op : ops_) m += op.macs;
    return m;
  }
  double macs(const std::string& kind) const {
    double m = 0;
    for (const auto& op : ops_)
      if (op.kind == kind) m += op.macs;
    return m;
  }
  std::vector<std::string> kinds() const {
    std::vector<std::string> out;
    for (const auto& op : ops_)
      if (std::find(out.begin(), out.end(), op.kind) == out.end()) out.push_back(op.kind);
    return out;
  }
  // kind -> implementation names oneDNN picked.
  std::map<std::string, std::set<std::string>> impls() const {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& op : ops_) out[op.kind].insert(op.impl);
    return out;
  }
  size_t weight_bytes() const { return weight_bytes_; }

  // Whether the chain's int8 products are exact: an fc2-shaped matmul
  // ([T, 4D] x [4D, D] -> s32, as in the chain) on A = 255 everywhere and
  // weights -128 / 127 in alternate columns, against the exact int32 sums
  // 255 * 4D * w. Without VNNI (avx2, avx512_core), oneDNN adds u8 x s8
  // products in pairs into saturating int16 (vpmaddubsw; its "Nuances of
  // int8 computations"), so these sums come out wrong there.
  struct Probe {
    bool exact;
    int64_t k;
    int32_t got, want;  // column 0 of row 0
    std::string impl;
  };
  Probe probe_exact() {
    const int64_t m = tokens_, k = 4 * dim_, n = dim_;
    auto weight = [n](size_t i) { return static_cast<int8_t>(i % static_cast<size_t>(n) % 2 ? 127 : -128); };
    const dnnl::memory::desc src_md({m, k}, dt::u8, tag::ab);
    const dnnl::memory::desc w_any({k, n}, dt::s8, tag::any);
    const dnnl::memory::desc dst_md({m, n}, dt::s32, tag::ab);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_any, dst_md), eng_);
    std::vector<uint8_t> a(static_cast<size_t>(m * k), 255);
    std::vector<int8_t> w(static_cast<size_t>(k * n));
    for (size_t i = 0; i < w.size(); ++i) w[i] = weight(i);
    std::vector<int32_t> c(static_cast<size_t>(m * n));
    dnnl::memory w_user({{k, n}, dt::s8, tag::ab}, eng_, w.data());
    dnnl::memory w_packed(pd.weights_desc(), eng_);
    dnnl::reorder(w_user, w_packed).execute(stream_, w_user, w_packed);
    dnnl::matmul(pd).execute(stream_, {{DNNL_ARG_SRC, dnnl::memory(src_md, eng_, a.data())},
                                       {DNNL_ARG_WEIGHTS, w_packed},
                                       {DNNL_ARG_DST, dnnl::memory(dst_md, eng_, c.data())}});
    stream_.wait();
    // C[i][j] = 255 * k * w(j) (w is the same in every row, and the row
    // stride of C is n like B's).
    auto want = [&](size_t i) { return static_cast<int32_t>(255 * k * weight(i)); };
    bool exact = true;
    for (size_t i = 0; i < c.size(); ++i) exact = exact && c[i] == want(i);
    return {exact, k, c[0], want(0), pd.impl_info_str()};
  }

 private:
  Buffer& buffer(size_t n) {
    buffers_.push_back(std::make_unique<Buffer>(n, rng_));
    return *buffers_.back();
  }

  static dnnl::primitive_attr requant_attr(dt dst) {
    dnnl::primitive_attr attr;
    // A common static output scale: int32 -> u8 requantization in the epilogue.
    if (dst == dt::u8) attr.set_output_scales(0, {1.0f / 256.0f});
    return attr;
  }

  // [m,k] u8 x [k,n] s8 (+ s32 bias) -> [m,n]; weights prepacked.
  void linear(const char* kind, int64_t m, int64_t k, int64_t n, void* src, dt dst_type, void* dst) {
    const dnnl::memory::desc src_md({m, k}, dt::u8, tag::ab);
    const dnnl::memory::desc w_any({k, n}, dt::s8, tag::any);
    const dnnl::memory::desc bias_md({1, n}, dt::s32, tag::ab);
    const dnnl::memory::desc dst_md({m, n}, dst_type, tag::ab);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_any, bias_md, dst_md),
                                          requant_attr(dst_type), eng_);
    // Distinct random weights per layer, reordered once into the packed layout.
    Buffer& w_plain = buffer(static_cast<size_t>(k * n));
    dnnl::memory w_user({{k, n}, dt::s8, tag::ab}, eng_, w_plain.data());
    dnnl::memory w_packed(pd.weights_desc(), eng_);
    dnnl::reorder(w_user, w_packed).execute(stream_, w_user, w_packed);
    stream_.wait();
    weight_bytes_ += pd.weights_desc().get_size();
    Buffer& bias = buffer(static_cast<size_t>(n * 4));
    std::memset(bias.data(), 0, bias.bytes.size());
    Op op;
    op.kind = kind;
    op.prim = dnnl::matmul(pd);
    op.impl = pd.impl_info_str();
    op.macs = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    op.args = {{DNNL_ARG_SRC, dnnl::memory(src_md, eng_, src)},
               {DNNL_ARG_WEIGHTS, w_packed},
               {DNNL_ARG_BIAS, dnnl::memory(bias_md, eng_, bias.data())},
               {DNNL_ARG_DST, dnnl::memory(dst_md, eng_, dst)}};
    ops_.push_back(std::move(op));
  }

  // Batched activation x activation matmul: both operands are produced at run
  // time, so the "weights" keep a plain layout.
  void batched(const char* kind, const dims& src_dims, void* src, const dims& w_dims, tag w_tag, void* w,
               dt dst_type, void* dst) {
    const dnnl::memory::desc src_md(src_dims, dt::u8, tag::abc);
    const dnnl::memory::desc w_md(w_dims, dt::s8, w_tag);
    const dnnl::memory::desc dst_md({src_dims[0], src_dims[1], w_dims[2]}, dst_type, tag::abc);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src_md, w_md, dst_md), requant_attr(dst_type), eng_);
    Op op;
    op.kind = kind;
    op.prim = dnnl::matmul(pd);
    op.impl = pd.impl_info_str();
    op.macs = static_cast<double>(src_dims[0]) * static_cast<double>(src_dims[1]) *
              static_cast<double>(src_dims[2]) * static_cast<double>(w_dims[2]);
    op.args = {{DNNL_ARG_SRC, dnnl::memory(src_md, eng_, src)},
               {DNNL_ARG_WEIGHTS, dnnl::memory(w_md, eng_, w)},
               {DNNL_ARG_DST, dnnl::memory(dst_md, eng_, dst)}};
    ops_.push_back(std::move(op));
  }

  dnnl::engine eng_;
  dnnl::stream stream_;
  std::mt19937 rng_;
  std::vector<std::unique_ptr<Buffer>> buffers_;
  std::vector<Op> ops_;
  size_t weight_bytes_ = 0;
  int64_t tokens_ = 0;  // rows of the linear layers (batch x tokens)
  int dim_ = 0;         // embedding width
};

using vitint::bench::percentile;
using vitint::bench::time_ms;

int parse_int(const std::string& name, const std::string& value, int lo, int hi) {
  size_t used = 0;
  long v = 0;
  try {
    v = std::stol(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || v < lo || v > hi)
    throw std::runtime_error("option --" + name + " must be an integer in [" + std::to_string(lo) + ", " +
                             std::to_string(hi) + "], got '" + value + "'");
  return static_cast<int>(v);
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) out += c;
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::map<std::string, std::string> opt;
    std::set<std::string> flags;
    const std::set<std::string> with_value = {"arch", "threads", "batch", "iterations", "warmup", "isa"};
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        std::fputs(kUsage, stdout);
        return 0;
      }
      if (a.size() < 3 || a.compare(0, 2, "--") != 0) throw std::runtime_error("unexpected argument '" + a + "' (see --help)");
      a = a.substr(2);
      std::string value;
      const auto eq = a.find('=');
      if (eq != std::string::npos) {
        value = a.substr(eq + 1);
        a = a.substr(0, eq);
      }
      if (with_value.count(a)) {
        if (eq == std::string::npos) {
          if (i + 1 >= argc) throw std::runtime_error("option --" + a + " needs a value");
          value = argv[++i];
        }
        opt[a] = value;
      } else if (a == "per-op" || a == "json") {
        flags.insert(a);
      } else {
        throw std::runtime_error("unknown option --" + a + " (see --help)");
      }
    }
    if (!opt.count("arch")) throw std::runtime_error("--arch NAME is required (see --help)");
    const auto arch_it = kArchs.find(opt["arch"]);
    if (arch_it == kArchs.end())
      throw std::runtime_error("unknown architecture '" + opt["arch"] +
                               "' (use deit_{tiny,small,base}_patch16_224 or vit_{tiny,small,base}_patch16_224)");
    const int threads = opt.count("threads") ? parse_int("threads", opt["threads"], 1, 1024) : 1;
    const int batch = opt.count("batch") ? parse_int("batch", opt["batch"], 1, 4096) : 1;
    const int iterations = opt.count("iterations") ? parse_int("iterations", opt["iterations"], 1, 10000000) : 100;
    const int warmup =
        opt.count("warmup") ? parse_int("warmup", opt["warmup"], 0, 10000000) : std::max(5, iterations / 10);
    const bool json = flags.count("json") > 0;

    // Must precede any other oneDNN call.
    if (opt.count("isa")) {
      const auto isa_it = kIsas.find(opt["isa"]);
      if (isa_it == kIsas.end()) throw std::runtime_error("unknown --isa '" + opt["isa"] + "' (see --help)");
      if (dnnl::set_max_cpu_isa(isa_it->second) != dnnl::status::success)
        throw std::runtime_error("dnnl::set_max_cpu_isa(" + opt["isa"] + ") failed");
    }
    omp_set_num_threads(threads);

    Chain chain(arch_it->second, batch);
    const Chain::Probe probe = chain.probe_exact();
    const std::string effective_isa = isa_name(dnnl::get_effective_cpu_isa());
    const std::vector<double> ms = time_ms(warmup, iterations, [&] { chain.run(); });
    const double median = percentile(ms, 0.5), p10 = percentile(ms, 0.1), p90 = percentile(ms, 0.9);
    const double macs = chain.macs();

    // Per kind: the same chain restricted to one kind of matmul (weights then
    // come from L2/memory as in the full chain only for the large layers).
    std::vector<std::pair<std::string, double>> per_op;
    if (flags.count("per-op"))
      for (const auto& kind : chain.kinds())
        per_op.emplace_back(kind, percentile(time_ms(warmup, iterations, [&] { chain.run_kind(kind); }), 0.5));

    const auto impls = chain.impls();
    if (json) {
      std::printf("{\n  \"tool\": \"vitint-onednn-chain\",\n  \"onednn_version\": \"%d.%d.%d\",\n",
                  dnnl::version()->major, dnnl::version()->minor, dnnl::version()->patch);
      std::printf("  \"architecture\": \"%s\",\n  \"isa\": \"%s\",\n  \"threads\": %d,\n  \"batch\": %d,\n",
                  arch_it->first.c_str(), effective_isa.c_str(), threads, batch);
      std::printf("  \"iterations\": %d,\n  \"warmup\": %d,\n  \"macs\": %.0f,\n  \"weight_bytes\": %zu,\n", iterations,
                  warmup, macs, chain.weight_bytes());
      std::printf("  \"median_ms\": %.6f,\n  \"p10_ms\": %.6f,\n  \"p90_ms\": %.6f,\n", median, p10, p90);
      std::printf("  \"images_per_s\": %.3f,\n  \"gmacs_per_s\": %.3f,\n", 1000.0 * batch / median,
                  macs / median * 1e-6);
      std::printf("  \"int8_exact\": %s,\n  \"int8_probe\": {\"impl\": \"%s\", \"got\": %d, \"exact\": %d},\n",
                  probe.exact ? "true" : "false", json_escape(probe.impl).c_str(), probe.got, probe.want);
      std::printf("  \"impls\": {");
      bool first = true;
      for (const auto& [kind, names] : impls) {
        std::string joined;
        for (const auto& nm : names) joined += (joined.empty() ? "" : ",") + nm;
        std::printf("%s\"%s\": \"%s\"", first ? "" : ", ", kind.c_str(), json_escape(joined).c_str());
        first = false;
      }
      std::printf("},\n  \"per_op_ms\": {");
      for (size_t i = 0; i < per_op.size(); ++i)
        std::printf("%s\"%s\": %.6f", i ? ", " : "", per_op[i].first.c_str(), per_op[i].second);
      std::printf("}\n}\n");
    } else {
      std::printf("%s  oneDNN %d.%d.%d  isa=%s  threads=%d  batch=%d  iterations=%d (+%d warm-up)\n",
                  arch_it->first.c_str(), dnnl::version()->major, dnnl::version()->minor, dnnl::version()->patch,
                  effective_isa.c_str(), threads, batch, iterations, warmup);
      std::printf("matmuls: %.3f GMAC, %.1f MB of packed weights\n", macs * 1e-9,
                  static_cast<double>(chain.weight_bytes()) * 1e-6);
      std::printf("latency  median %.3f ms  p10 %.3f ms  p90 %.3f ms  (%.1f GMAC/s, %.1f images/s)\n", median, p10,
                  p90, macs / median * 1e-6, 1000.0 * batch / median);
      for (const auto& [kind, names] : impls) {
        std::string joined;
        for (const auto& nm : names) joined += (joined.empty() ? "" : ", ") + nm;
        std::printf("  %-6s %s\n", kind.c_str(), joined.c_str());
      }
      if (probe.exact) {
        std::printf("int8 products: exact (255 x -128 summed over k = %lld: %d)\n", static_cast<long long>(probe.k),
                    probe.got);
      } else {
        std::printf("int8 products: NOT exact on this ISA (%s): 255 x -128 summed over k = %lld gave %d, exact %d "
                    "(u8 x s8 pairs added in saturating int16)\n",
                    probe.impl.c_str(), static_cast<long long>(probe.k), probe.got, probe.want);
      }
      for (const auto& [kind, t] : per_op)
        std::printf("  %-6s %8.3f ms  %6.1f GMAC/s\n", kind.c_str(), t, chain.macs(kind) / t * 1e-6);
    }
    return 0;
  } catch (const dnnl::error& e) {
    std::fprintf(stderr, "vitint-onednn-chain: oneDNN error %d: %s\n", static_cast<int>(e.status), e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "vitint-onednn-chain: error: %s\n", e.what());
    return 1;
  }
}
