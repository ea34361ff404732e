#!/usr/bin/python3
"""Speed comparison of libvitint with its peers, in one job on one machine.

Runs, interleaved over several rounds so that every contender sees the same
background load:
  libvitint            vitint-bench on a random-weight model (the CPU's best ISA)
  libvitint VNNI       the same model with --isa avx512vnni (AMX disabled)
  PyTorch FP32         bench/peers_torch.py --mode fp32
  PyTorch int8 dyn     bench/peers_torch.py --mode int8dyn (quantize_dynamic)
  oneDNN chain AMX     vitint-onednn-chain: the model's matmuls only, int8
  oneDNN chain VNNI    the same with oneDNN limited to avx512_core_vnni
for each architecture, thread count and batch size, then prints a Markdown
table of latencies and ratios, writes JSON and draws a chart.

The contenders named after an ISA are labelled with the ISA their runs
report: on a CPU without AMX the unrestricted ones say which ISA they used,
and a restricted one the CPU cannot run (AVX-512 VNNI on an AVX2-only CPU)
is left out after a probe, with a line saying so.

  /usr/bin/python3 bench/compare.py --build /tmp/build-bench --out /tmp/speed \\
      --chart docs/speed.svg --update-doc docs/speed.md

Needs: the two C++ tools built (vitint-bench, vitint-onednn-chain), and for the
PyTorch peers and the chart Debian's packages:
  apt-get install -y python3-torch libopenblas0-pthread python3-matplotlib
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHORT = {
    "deit_tiny_patch16_224": "DeiT-T",
    "deit_small_patch16_224": "DeiT-S",
    "deit_base_patch16_224": "DeiT-B",
    "vit_tiny_patch16_224": "ViT-T",
    "vit_small_patch16_224": "ViT-S",
    "vit_base_patch16_224": "ViT-B",
}
ALIASES = {"deit_tiny": "deit_tiny_patch16_224", "deit_small": "deit_small_patch16_224",
           "deit_base": "deit_base_patch16_224", "vit_tiny": "vit_tiny_patch16_224",
           "vit_small": "vit_small_patch16_224", "vit_base": "vit_base_patch16_224"}
# Contenders, in table order: key -> label.
TOOLS = {
    "vitint": "libvitint (AMX)",
    "vitint_vnni": "libvitint, AMX off (VNNI)",
    "vitint_avxvnni": "libvitint, AVX-VNNI (no AVX-512)",
    "torch_fp32": "PyTorch FP32",
    "torch_int8": "PyTorch dynamic int8",
    "torch_bf16": "PyTorch bf16 autocast",
    "onednn_amx": "oneDNN int8 matmuls only (AMX)",
    "onednn_vnni": "oneDNN int8 matmuls only (VNNI)",
    "onednn_avxvnni": "oneDNN int8 matmuls only (AVX-VNNI)",
}
DEFAULT_TOOLS = ["vitint", "vitint_vnni", "torch_fp32", "torch_int8", "onednn_amx", "onednn_vnni"]
# First guess of a run's latency at 1 thread, batch 1, per GMAC, to size round 0.
GUESS_MS_PER_GMAC = {"vitint": 4, "vitint_vnni": 7, "vitint_avxvnni": 12, "torch_fp32": 25, "torch_int8": 25,
                     "torch_bf16": 15, "onednn_amx": 2, "onednn_vnni": 4, "onednn_avxvnni": 8}
GMACS = {"deit_tiny_patch16_224": 1.25, "deit_small_patch16_224": 4.60, "deit_base_patch16_224": 17.56,
         "vit_tiny_patch16_224": 1.25, "vit_small_patch16_224": 4.60, "vit_base_patch16_224": 17.56}
# Contenders run with a restricted ISA: tool key -> the --isa value its program takes.
ISA_ARG = {"vitint_vnni": "avx512vnni", "vitint_avxvnni": "avxvnni",
           "onednn_vnni": "avx512_core_vnni", "onednn_avxvnni": "avx2_vnni"}
# Unrestricted contenders whose label names an ISA: tool key -> that ISA, as a
# substring of the ISA their runs report (upper-case in the label).
LABEL_ISA = {"vitint": "amx", "onednn_amx": "amx"}


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def find_tool(build, name):
    for cand in (os.path.join(build, "bench", name), os.path.join(build, name)):
        if os.access(cand, os.X_OK):
            return cand
    found = shutil.which(name)
    if found:
        return found
    sys.exit(f"compare.py: {name} not found under {build}/bench or on PATH; build it first "
             f"(cmake --build {build} --target {name})")


def torch_python():
    """An interpreter that can import torch (Debian's python3-torch lives in /usr/bin/python3)."""
    for py in (sys.executable, "/usr/bin/python3"):
        if py and subprocess.run([py, "-c", "import torch"], capture_output=True).returncode == 0:
            return py
    return None


def run_json(cmd, env):
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr.strip()}")
    return json.loads(p.stdout)


class Runner:
    def __init__(self, args):
        self.args = args
        self.bench = find_tool(args.build, "vitint-bench") if any(t.startswith("vitint") for t in args.tools) else None
        self.chain = (find_tool(args.build, "vitint-onednn-chain")
                      if any(t.startswith("onednn") for t in args.tools) else None)
        self.py = torch_python() if any(t.startswith("torch") for t in args.tools) else None
        if any(t.startswith("torch") for t in args.tools) and not self.py:
            sys.exit("compare.py: no Python with PyTorch: apt-get install -y python3-torch libopenblas0-pthread "
                     "(or pass --tools without the torch_* entries)")
        self.models = {}
        self.tmp = tempfile.mkdtemp(prefix="vitint-compare-")

    def model(self, arch):
        """Builds (once) the random-weight .vti model that every libvitint run loads."""
        if arch not in self.models:
            path = os.path.join(self.tmp, arch + ".vti")
            t0 = time.time()
            run_json([self.bench, "--arch", arch, "--save", path, "--iterations", "1", "--warmup", "0", "--json"],
                     self.env(1))
            log(f"  built random {arch} model in {time.time() - t0:.1f} s")
            self.models[arch] = path
        return self.models[arch]

    def env(self, threads):
        e = dict(os.environ)
        for kv in self.args.env:
            k, _, v = kv.partition("=")
            e[k] = v
        e.pop("ONEDNN_MAX_CPU_ISA", None)
        e.pop("DNNL_MAX_CPU_ISA", None)
        e.pop("VITINT_ISA", None)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            e[var] = str(threads)
        return e

    def run(self, tool, arch, threads, batch, iterations):
        common = ["--threads", str(threads), "--batch", str(batch), "--iterations", str(iterations)]
        warm = ["--warmup", str(max(2, iterations // 10))]
        env = self.env(threads)
        if tool.startswith("vitint"):
            cmd = [self.bench, self.model(arch)] + common + warm + ["--json"]
            if tool in ISA_ARG:
                cmd += ["--isa", ISA_ARG[tool]]
            r = run_json(cmd, env)
        elif tool.startswith("onednn"):
            cmd = [self.chain, "--arch", arch] + common + warm + ["--json"]
            if tool in ISA_ARG:
                cmd += ["--isa", ISA_ARG[tool]]
            r = run_json(cmd, env)
        else:
            mode = {"torch_fp32": "fp32", "torch_int8": "int8dyn", "torch_bf16": "bf16"}[tool]
            cmd = [self.py, os.path.join(HERE, "peers_torch.py"), "--arch", arch, "--mode", mode] + common + warm + [
                "--json"]
            r = run_json(cmd, env)[0]
        r["tool_key"] = tool
        return r


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def git_describe():
    p = subprocess.run(["git", "-C", HERE, "log", "-1", "--format=%h %cd", "--date=short"], capture_output=True,
                       text=True)
    dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    return (p.stdout.strip() or "unknown") + (" + uncommitted changes" if dirty else "")


def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v:#.3g} ms" if v < 10 else f"{v:.1f} ms" if v < 100 else f"{v:.0f} ms"


def fmt_x(v):
    return "-" if v is None else f"{v:.2f}x"


def aggregate(runs):
    """(tool, arch, threads, batch) -> {median_ms, best_p10_ms, rounds, ...}."""
    groups = {}
    for r in runs:
        key = (r["tool_key"], r["architecture"], r["threads"], r["batch"])
        groups.setdefault(key, []).append(r)
    out = {}
    for key, rs in groups.items():
        out[key] = {
            "median_ms": statistics.median(r["median_ms"] for r in rs),  # median of the round medians
            "best_p10_ms": min(r["p10_ms"] for r in rs),
            "round_medians_ms": [r["median_ms"] for r in rs],
            "isa": rs[0].get("isa"),
            # vitint-onednn-chain's probe: False where its int8 products saturate.
            "int8_exact": all(r.get("int8_exact", True) for r in rs),
        }
    return out


def label(tool, used, exact=True):
    """TOOLS[tool], except that an unrestricted contender whose runs used (a
    collection of reported ISAs) another ISA than its label names (a CPU
    without AMX) names the ISA it used, and one whose int8 products are not
    exact (oneDNN without VNNI) says so."""
    isa, used = LABEL_ISA.get(tool), sorted(set(used) - {None})
    name = TOOLS[tool]
    if isa and used and not all(isa in u for u in used):
        name = name.replace(isa.upper(), "/".join(used))
    return name if exact else name[:-1] + ", saturating)"


def labels(agg):
    """label() of every contender, from the ISAs and the exactness its aggregated runs report."""
    return {tool: label(tool, [v.get("isa") for k, v in agg.items() if k[0] == tool],
                        all(v["int8_exact"] for k, v in agg.items() if k[0] == tool)) for tool in TOOLS}


def markdown(agg, args, meta, names):
    archs, lines = args.archs, []
    head = "| | " + " | ".join(SHORT.get(a, a) for a in archs) + " |"
    sep = "|---" * (len(archs) + 1) + "|"

    def get(tool, arch, t, b, field="median_ms"):
        v = agg.get((tool, arch, t, b))
        return v[field] if v else None

    def ratio_cells(num, den, t, b):
        """num/den on the medians, and in parentheses on the lowest p10s."""
        cells = []
        for a in archs:
            n, d = get(num[0], a, num[1], b), get(den[0], a, den[1], b)
            if not (n and d):
                cells.append("-")
                continue
            n10, d10 = get(num[0], a, num[1], b, "best_p10_ms"), get(den[0], a, den[1], b, "best_p10_ms")
            cells.append(f"{fmt_x(n / d)} ({fmt_x(n10 / d10)})")
        return " | ".join(cells)

    for b in args.batches:
        lines += [f"### Latency, batch {b}: median (lowest p10) over {args.rounds} interleaved rounds", "", head, sep]
        for t in args.threads:
            for tool in args.tools:
                cells = []
                for a in archs:
                    v = agg.get((tool, a, t, b))
                    cells.append(f"{fmt_ms(v['median_ms'])} ({fmt_ms(v['best_p10_ms'])[:-3]})" if v else "-")
                lines.append(f"| {names[tool]}, {t} thread{'s' if t > 1 else ''} | " + " | ".join(cells) + " |")
        lines.append("")

        rows = []
        for t in args.threads:
            ts = f"{t} thread{'s' if t > 1 else ''}"
            if "vitint" in args.tools:
                for peer in [p for p in args.tools if p.startswith("torch")]:
                    rows.append(f"| speed-up of libvitint vs {names[peer]}, {ts} | "
                                + ratio_cells((peer, t), ("vitint", t), t, b) + " |")
            for mine, chain in (("vitint", "onednn_amx"), ("vitint_vnni", "onednn_vnni"),
                                ("vitint_avxvnni", "onednn_avxvnni")):
                if mine in args.tools and chain in args.tools:
                    rows.append(f"| {names[mine]} / {names[chain]}, {ts} | "
                                + ratio_cells((mine, t), (chain, t), t, b) + " |")
            if "vitint" in args.tools and "vitint_vnni" in args.tools:
                rows.append(f"| {names['vitint']} speed-up over {names['vitint_vnni']}, {ts} | "
                            + ratio_cells(("vitint_vnni", t), ("vitint", t), t, b) + " |")
        if len(args.threads) > 1:
            t1, t2 = args.threads[0], args.threads[-1]
            for tool in args.tools:
                rows.append(f"| {t2}-thread vs {t1}-thread speed-up, {names[tool]} | "
                            + ratio_cells((tool, t1), (tool, t2), t1, b) + " |")
        if rows:
            lines += [f"### Ratios, batch {b}: on the medians (on the lowest p10s)", "", head, sep] + rows
        else:
            lines.append(f"No ratios for batch {b}: --tools names no pair to compare (a PyTorch peer with vitint, "
                         "vitint with onednn_amx, vitint_vnni with onednn_vnni, vitint_avxvnni with "
                         "onednn_avxvnni, or a second thread count).")
        lines.append("")
    if not all(v["int8_exact"] for v in agg.values()):
        lines += ["\"saturating\": on this ISA oneDNN adds the u8 x s8 products in pairs into saturating int16 "
                  "(vpmaddubsw; oneDNN's \"Nuances of int8 computations\"), so its matmuls are not exact: "
                  "vitint-onednn-chain's probe (255 x -128 summed over k) gets a wrong sum. libvitint's products "
                  "are exact on every path, at 4 instead of 3 vector operations per 32 products on AVX2.", ""]
    lines += [f"Measured {meta['date']} on {meta['cpu']} ({meta['cores']} cores), libvitint {meta['git']}, "
              f"{meta['rounds']} rounds, load average {meta['load_before']:.1f} before / "
              f"{meta['load_after']:.1f} after; `bench/compare.py {' '.join(meta['argv'])}`.", ""]
    return "\n".join(lines)


def chart(agg, args, path, names):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("compare.py: matplotlib missing (apt-get install -y python3-matplotlib): no chart")
        return False
    matplotlib.rcParams["svg.hashsalt"] = "vitint"
    b = args.batches[0]
    tools = args.tools
    fig, axes = plt.subplots(1, len(args.threads), figsize=(5.2 * len(args.threads) + 1, 5.2), sharey=True,
                             squeeze=False)
    colors = {"vitint": "#1f6fb4", "vitint_vnni": "#7fb2e0", "vitint_avxvnni": "#aec7e8", "torch_fp32": "#d62728",
              "torch_int8": "#ff9896", "torch_bf16": "#e377c2", "onednn_amx": "#2ca02c", "onednn_vnni": "#98df8a",
              "onednn_avxvnni": "#c7e9c0"}
    width = 0.8 / len(tools)
    for ax, t in zip(axes[0], args.threads):
        for i, tool in enumerate(tools):
            xs, ys, p10s = [], [], []
            for j, a in enumerate(args.archs):
                v = agg.get((tool, a, t, b))
                if v:
                    xs.append(j + (i - (len(tools) - 1) / 2) * width)
                    ys.append(v["median_ms"])
                    p10s.append(v["best_p10_ms"])
            bars = ax.bar(xs, ys, width, label=names[tool], color=colors.get(tool))
            ax.scatter(xs, p10s, marker="_", color="black", s=40, linewidths=1, zorder=3,
                       label="lowest p10" if i == 0 else None)
            for bar, y in zip(bars, ys):
                ax.annotate(f"{y:.3g}" if y < 100 else f"{y:.0f}", (bar.get_x() + bar.get_width() / 2, y),
                            ha="center", va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                            textcoords="offset points")
        ax.set_yscale("log")
        ax.set_xticks(range(len(args.archs)))
        ax.set_xticklabels([SHORT.get(a, a) for a in args.archs])
        ax.set_title(f"{t} thread{'s' if t > 1 else ''}, batch {b}")
        ax.grid(axis="y", which="both", alpha=0.3)
    lows = [v["best_p10_ms"] for k, v in agg.items() if k[3] == b and k[0] in tools]
    if lows:
        axes[0][0].set_ylim(bottom=min(lows) * 0.7)
    axes[0][0].set_ylabel("latency per run, ms (median, log scale; lower is better)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=min(4, len(tools)), frameon=False)
    fig.suptitle("libvitint vs peers (random weights, 224x224)", fontsize=10)
    fig.tight_layout(rect=(0, 0.1 if len(tools) > 4 else 0.06, 1, 1))
    fig.savefig(path, metadata={"Date": None} if path.endswith(".svg") else None)
    plt.close(fig)
    return True


def update_doc(path, table, chart_rel):
    begin, end = "<!-- compare.py:begin -->", "<!-- compare.py:end -->"
    block = f"{begin}\n{table}\n" + (f"![latency chart]({chart_rel})\n" if chart_rel else "") + f"{end}"
    text = open(path).read() if os.path.exists(path) else f"# Speed\n\n{begin}\n{end}\n"
    if begin not in text or end not in text:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
    pre, rest = text.split(begin, 1)
    post = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(pre + block + post)


def measure(args):
    """Runs every contender over the grid, interleaved; returns (meta, runs)."""
    runner = Runner(args)
    meta = {"date": datetime.date.today().isoformat(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "git": git_describe(), "rounds": args.rounds, "argv": sys.argv[1:], "load_before": os.getloadavg()[0],
            "python_torch": runner.py, "env": args.env}
    for tool in [t for t in args.tools if t in ISA_ARG]:
        # A restricted contender the CPU cannot run fails, or (oneDNN) runs another ISA: probe once.
        try:
            isa = runner.run(tool, args.archs[0], 1, 1, 1).get("isa") or ""
            why = None if ISA_ARG[tool] in isa else f"it ran {isa or 'an unreported ISA'}"
        except (RuntimeError, ValueError) as e:
            why = str(e).splitlines()[-1]
        if why:
            log(f"{TOOLS[tool]}: left out, this CPU lacks {ISA_ARG[tool]} ({why})")
            args.tools.remove(tool)
    if not args.tools:
        sys.exit("compare.py: this CPU can run none of the contenders asked for")
    grid = [(a, t, b) for b in args.batches for a in args.archs for t in args.threads]
    estimate = {}  # (tool, arch, threads, batch) -> ms, refined after every run
    runs = []
    for rnd in range(args.rounds):
        log(f"round {rnd + 1}/{args.rounds}")
        for (a, t, b) in grid:
            # Rotate the order every round so that no contender always runs first after a switch.
            order = args.tools[rnd % len(args.tools):] + args.tools[:rnd % len(args.tools)]
            for tool in order:
                key = (tool, a, t, b)
                est = estimate.get(key, GUESS_MS_PER_GMAC[tool] * GMACS[a] * b)
                iters = int(min(args.max_iterations, max(args.min_iterations, args.seconds * 1e3 / est)))
                try:
                    r = runner.run(tool, a, t, b, iters)
                except (RuntimeError, ValueError) as e:
                    log(f"  {tool} {a} t={t} b={b}: FAILED: {e}")
                    continue
                r["round"] = rnd
                r["load1"] = os.getloadavg()[0]
                runs.append(r)
                estimate[key] = r["median_ms"]
                name = label(tool, [r.get("isa")], r.get("int8_exact", True))
                log(f"  {name:44s} {SHORT[a]:6s} t={t} b={b}: median {r['median_ms']:.3f} ms "
                    f"(p10 {r['p10_ms']:.3f}, {iters} it)")
    meta["load_after"] = os.getloadavg()[0]
    shutil.rmtree(runner.tmp, ignore_errors=True)
    return meta, runs


def parse_args():
    """The command line, checked before anything runs; the saved run of --from-json."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default=os.path.join(os.path.dirname(HERE), "build"),
                   help="CMake build directory holding bench/vitint-bench and bench/vitint-onednn-chain")
    p.add_argument("--archs", default="deit_tiny,deit_small,deit_base",
                   help="comma-separated (deit_tiny, deit_small, deit_base, vit_tiny, vit_small, vit_base)")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--batches", default="1", help="comma-separated batch sizes")
    p.add_argument("--tools", default=",".join(DEFAULT_TOOLS), help="comma-separated, from: " + ", ".join(TOOLS))
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds (the table shows the median)")
    p.add_argument("--seconds", type=float, default=2.0, help="timed seconds per run (sets the iterations)")
    p.add_argument("--min-iterations", type=int, default=5)
    p.add_argument("--max-iterations", type=int, default=400)
    p.add_argument("--out", default="speed-results", help="directory for results.json, table.md, chart")
    p.add_argument("--chart", default=None, help="chart file (.svg or .png; default OUT/speed.svg)")
    p.add_argument("--env", action="append", default=[], metavar="VAR=VALUE",
                   help="environment for every contender (repeatable), e.g. OMP_WAIT_POLICY=PASSIVE, which keeps "
                        "OpenMP peers from spinning on a machine shared with other jobs")
    p.add_argument("--from-json", default=None, metavar="RESULTS.json",
                   help="measure nothing: redo the table, chart and doc from a previous results.json")
    p.add_argument("--force", action="store_true",
                   help="replace the results of an earlier run in OUT (refused otherwise)")
    p.add_argument("--update-doc", default=None,
                   help="Markdown file whose <!-- compare.py:begin/end --> block gets the table and chart link")
    args = p.parse_args()
    args.archs = [ALIASES.get(a.strip(), a.strip()) for a in args.archs.split(",") if a.strip()]
    if not args.archs:
        p.error("--archs names no architecture")
    for a in args.archs:
        if a not in SHORT:
            p.error(f"unknown architecture {a}")

    def int_list(name, text, hi):
        try:
            values = [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            values = []
        if not values or any(v < 1 or v > hi for v in values):
            p.error(f"--{name} must be comma-separated integers in [1, {hi}], got '{text}'")
        return values

    args.threads = int_list("threads", args.threads, 1024)
    args.batches = int_list("batches", args.batches, 4096)
    if args.rounds < 1:
        p.error(f"--rounds must be >= 1, got {args.rounds}")
    if not args.seconds > 0:
        p.error(f"--seconds must be > 0, got {args.seconds}")
    if not 1 <= args.min_iterations <= args.max_iterations:
        p.error(f"need 1 <= --min-iterations <= --max-iterations, got {args.min_iterations} and {args.max_iterations}")
    args.tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if not args.tools:
        p.error("--tools names no contender")
    for t in args.tools:
        if t not in TOOLS:
            p.error(f"unknown tool {t} (choose from {', '.join(TOOLS)})")
    args.tools = [t for t in TOOLS if t in args.tools]  # table order
    # A finished run takes many minutes: never replace one without asking,
    # and say so before measuring. (--from-json may redo its own directory.)
    results_path = os.path.join(args.out, "results.json")
    saved = None
    if args.from_json:
        try:
            with open(args.from_json) as f:
                saved = json.load(f)
            if "rounds" not in saved["meta"]:
                raise KeyError("meta.rounds")
            for r in saved["runs"]:
                lacking = [k for k in ("architecture", "threads", "batch", "tool_key") if k not in r]
                if lacking:
                    raise KeyError("runs[]." + lacking[0])
        except (OSError, ValueError, KeyError, TypeError) as e:
            p.error(f"--from-json {args.from_json}: not a results.json of compare.py ({type(e).__name__}: {e})")
    redo_same = saved is not None and os.path.exists(results_path) and os.path.samefile(args.from_json, results_path)
    if os.path.exists(results_path) and not args.force and not redo_same:
        p.error(f"{results_path} holds an earlier run; pass --force to replace it or choose another --out")
    return args, saved, results_path


def main():
    args, saved, results_path = parse_args()
    os.makedirs(args.out, exist_ok=True)
    chart_path = args.chart or os.path.join(args.out, "speed.svg")

    if saved is not None:
        meta, runs = saved["meta"], saved["runs"]
        # The grid and contenders are those of the saved runs, in table order.
        order = list(SHORT)
        args.archs = sorted({r["architecture"] for r in runs}, key=order.index)
        args.threads = sorted({r["threads"] for r in runs})
        args.batches = sorted({r["batch"] for r in runs})
        args.tools = [t for t in TOOLS if any(r["tool_key"] == t for r in runs)]
        args.rounds = meta["rounds"]
    else:
        meta, runs = measure(args)

    agg = aggregate(runs)
    names = labels(agg)
    table = markdown(agg, args, meta, names)
    print(table)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    with open(results_path, "w") as f:
        json.dump({"meta": meta,
                   "summary": [dict(zip(("tool", "architecture", "threads", "batch"), k), **v)
                               for k, v in sorted(agg.items())],
                   "runs": runs}, f, indent=2)
    drew = chart(agg, args, chart_path, names)
    if drew:
        log(f"chart: {chart_path}")
    if args.update_doc:
        rel = os.path.relpath(chart_path, os.path.dirname(os.path.abspath(args.update_doc))) if drew else None
        update_doc(args.update_doc, table, rel)
        log(f"updated {args.update_doc}")
    log(f"results: {results_path}")


if __name__ == "__main__":
    main()
