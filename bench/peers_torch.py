#!/usr/bin/python3
"""PyTorch peers for docs/speed.md: latency of a timm-shaped ViT/DeiT in
PyTorch FP32, PyTorch dynamic int8 (quantize_dynamic on nn.Linear) and
optionally bf16 autocast, random weights, eager mode.

timm is not packaged by Debian, so the network is written here in plain
PyTorch with timm's hyper-parameters and operator sequence (patch-embed conv,
class token, position embedding, pre-norm blocks of LayerNorm / qkv Linear /
softmax attention / proj / LayerNorm / fc1 / GELU / fc2, final norm, head on
the class token). Needs Debian's python3-torch (PyTorch 1.13) and a fast
BLAS for its FP32 linears (Debian's default libblas3 is the netlib reference
implementation, ~40x slower):
    apt-get install -y python3-torch libopenblas0-pthread
Thread counts are fixed through the environment before torch is imported, so
that OpenBLAS's own threads obey --threads too.
"""
import argparse
import json
import os
import statistics
import sys
import time

torch = None
nn = None


def import_torch(threads):
    global torch, nn
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)
    try:
        import torch as torch_module
    except ImportError:
        sys.exit("peers_torch.py: PyTorch is missing: apt-get install -y python3-torch "
                 "(and run it with Debian's /usr/bin/python3)")
    torch = torch_module
    nn = torch.nn

ARCHS = {
    # name: (embed_dim, depth, num_heads)
    "deit_tiny_patch16_224": (192, 12, 3),
    "deit_small_patch16_224": (384, 12, 6),
    "deit_base_patch16_224": (768, 12, 12),
    "vit_tiny_patch16_224": (192, 12, 3),
    "vit_small_patch16_224": (384, 12, 6),
    "vit_base_patch16_224": (768, 12, 12),
}
MODES = ("fp32", "int8dyn", "bf16")


def vision_transformer_class():
    """Defined after torch is imported (see import_torch)."""

    class Attention(nn.Module):
        def __init__(self, dim, num_heads):
            super().__init__()
            self.num_heads = num_heads
            self.scale = (dim // num_heads) ** -0.5
            self.qkv = nn.Linear(dim, dim * 3, bias=True)
            self.proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, n, c = x.shape
            qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv.unbind(0)
            attn = (q @ k.transpose(-2, -1)) * self.scale
            attn = attn.softmax(dim=-1)
            x = (attn @ v).transpose(1, 2).reshape(b, n, c)
            return self.proj(x)

    class Mlp(nn.Module):
        def __init__(self, dim, hidden):
            super().__init__()
            self.fc1 = nn.Linear(dim, hidden)
            self.act = nn.GELU()
            self.fc2 = nn.Linear(hidden, dim)

        def forward(self, x):
            return self.fc2(self.act(self.fc1(x)))

    class Block(nn.Module):
        def __init__(self, dim, num_heads, mlp_ratio=4.0):
            super().__init__()
            self.norm1 = nn.LayerNorm(dim, eps=1e-6)
            self.attn = Attention(dim, num_heads)
            self.norm2 = nn.LayerNorm(dim, eps=1e-6)
            self.mlp = Mlp(dim, int(dim * mlp_ratio))

        def forward(self, x):
            x = x + self.attn(self.norm1(x))
            return x + self.mlp(self.norm2(x))

    class VisionTransformer(nn.Module):
        """timm's VisionTransformer for the class-token, no-distillation case."""

        def __init__(self, embed_dim, depth, num_heads, img_size=224, patch_size=16, num_classes=1000):
            super().__init__()
            self.patch_embed = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)
            num_patches = (img_size // patch_size) ** 2
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
            self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
            self.blocks = nn.Sequential(*[Block(embed_dim, num_heads) for _ in range(depth)])
            self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
            self.head = nn.Linear(embed_dim, num_classes)
            nn.init.trunc_normal_(self.pos_embed, std=0.02)
            nn.init.trunc_normal_(self.cls_token, std=0.02)
            for m in self.modules():
                if isinstance(m, nn.Linear):
                    nn.init.trunc_normal_(m.weight, std=0.02)
                    nn.init.zeros_(m.bias)

        def forward(self, x):
            x = self.patch_embed(x).flatten(2).transpose(1, 2)  # [B, 196, D]
            x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1) + self.pos_embed
            x = self.norm(self.blocks(x))
            return self.head(x[:, 0])

    return VisionTransformer


def build(arch, mode):
    dim, depth, heads = ARCHS[arch]
    torch.manual_seed(0)
    model = vision_transformer_class()(dim, depth, heads).eval()
    if mode == "int8dyn":
        # Dynamic int8 linears (activations quantized per call); everything
        # else stays FP32, as users of quantize_dynamic get it. Debian's build
        # has no fbgemm: x86 int8 goes through oneDNN.
        engines = torch.backends.quantized.supported_engines
        for engine in ("x86", "fbgemm", "onednn"):
            if engine in engines:
                torch.backends.quantized.engine = engine
                break
        model = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    return model


def bench(arch, mode, threads, batch, iterations, warmup):
    torch.set_num_threads(threads)
    model = build(arch, mode)
    x = torch.rand(batch, 3, 224, 224)
    if mode == "bf16":
        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(x)
    else:
        def run():
            return model(x)
    ms = []
    with torch.inference_mode():
        for _ in range(warmup):
            run()
        for _ in range(iterations):
            t0 = time.perf_counter()
            run()
            ms.append((time.perf_counter() - t0) * 1e3)
    ms.sort()
    q = statistics.quantiles(ms, n=10, method="inclusive") if len(ms) > 1 else [ms[0]] * 9
    median = statistics.median(ms)
    return {
        "tool": "peers_torch",
        "framework": "pytorch " + torch.__version__,
        "qengine": torch.backends.quantized.engine if mode == "int8dyn" else None,
        "mode": mode,
        "architecture": arch,
        "threads": threads,
        "batch": batch,
        "iterations": iterations,
        "warmup": warmup,
        "median_ms": median,
        "p10_ms": q[0],
        "p90_ms": q[8],
        "min_ms": ms[0],
        "images_per_s": 1e3 * batch / median,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", action="append", choices=sorted(ARCHS),
                   help="architecture (repeatable; default deit_tiny_patch16_224)")
    p.add_argument("--mode", action="append", choices=MODES,
                   help="fp32, int8dyn (quantize_dynamic) or bf16 (autocast); repeatable; default fp32 and int8dyn")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--warmup", type=int, default=None, help="default max(3, iterations / 10)")
    p.add_argument("--json", action="store_true", help="print a JSON list of results")
    a = p.parse_args()
    if a.threads < 1 or a.batch < 1 or a.iterations < 1:
        p.error("--threads, --batch and --iterations must be >= 1")
    warmup = a.warmup if a.warmup is not None else max(3, a.iterations // 10)
    import_torch(a.threads)
    results = []
    for arch in a.arch or ["deit_tiny_patch16_224"]:
        for mode in a.mode or ["fp32", "int8dyn"]:
            r = bench(arch, mode, a.threads, a.batch, a.iterations, warmup)
            results.append(r)
            if not a.json:
                print(f"{arch:24s} {mode:8s} threads={a.threads} batch={a.batch}  median {r['median_ms']:.2f} ms"
                      f"  p10 {r['p10_ms']:.2f}  p90 {r['p90_ms']:.2f}  {r['images_per_s']:.1f} images/s",
                      flush=True)
    if a.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
