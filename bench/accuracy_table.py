#!/usr/bin/env python3
"""Accuracy of every FQ-ViT calibration recipe in libvitint, FQ-ViT's table style.

For each real model in $VITINT_SHARED/models, converts with vitint-convert
(calibration: the first 100 lines of val.txt) and evaluates with vitint-eval
on the other 1200 images:
  calibrator (minmax, ema, percentile, omse) x {no PTS, PTS} x {8-bit attention, 4-bit LIS}
with libvitint's own extras on (16-bit residual stream, folded per-channel
quantizers, fine GELU: the converter's defaults), plus MinMax + PTS and
MinMax + PTS + LIS with the extras off (--residual-bits 8 --no-channel-ln
--no-channel-gelu, and --no-channel-attn / --no-lis-normalize where the
converter has them): the closest to FQ-ViT's own code. FQ-ViT's figures from
$VITINT_SHARED/docs/reference-results.md stand beside the matching rows.

  python3 bench/accuracy_table.py --build /tmp/build-cal --md docs/accuracy.md --json docs/accuracy.json

Results are saved after every run (--json); a rerun with the same --json
skips the runs already there (--fresh to redo them). Standard library only.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MODELS = ["deit_tiny_patch16_224.fb_in1k", "vit_tiny_patch16_224.augreg_in21k_ft_in1k"]
SHORT = {"deit_tiny_patch16_224.fb_in1k": "DeiT-T", "vit_tiny_patch16_224.augreg_in21k_ft_in1k": "ViT-T augreg"}
# Column groups of reference-results.md's FQ-ViT table, in order.
REF_COLUMNS = {"DeiT-T": "deit_tiny_patch16_224.fb_in1k", "ViT-T augreg": "vit_tiny_patch16_224.augreg_in21k_ft_in1k"}
METHODS = ["minmax", "ema", "percentile", "omse"]
METHOD_NAMES = {"minmax": "MinMax", "ema": "EMA", "percentile": "Percentile", "omse": "OMSE"}
CALIB = 100


def configs(help_text):
    """(key, label, convert flags, fq-vit key or None, group)."""
    out = []
    for attn in (8, 4):
        for pts in (False, True):
            for m in METHODS:
                flags = ["--quant-method", m] + ([] if pts else ["--no-pts"]) + (["--attn-bits", "4"] if attn == 4 else [])
                key = "%s%s%s" % (m, "+pts" if pts else "", "+lis" if attn == 4 else "")
                label = METHOD_NAMES[m] + (" + PTS" if pts else "") + (" + LIS" if attn == 4 else "")
                out.append((key, label, flags, (m, pts, attn == 4), "grid"))
    closest = ["--residual-bits", "8", "--no-channel-ln", "--no-channel-gelu"]
    for opt in ("--no-channel-attn", "--no-lis-normalize"):
        if opt in help_text:
            closest.append(opt)
    out.append(("fqvit-like:minmax+pts", "MinMax + PTS, FQ-ViT-like", ["--quant-method", "minmax"] + closest,
                ("minmax", True, False), "fqvit-like"))
    out.append(("fqvit-like:minmax+pts+lis", "MinMax + PTS + LIS, FQ-ViT-like",
                ["--quant-method", "minmax", "--attn-bits", "4"] + closest, ("minmax", True, True), "fqvit-like"))
    # Which extra matters: FQ-ViT-like plus one extra, and the default minus the 16-bit stream.
    base = ["--quant-method", "minmax"]
    extras = [("--residual-bits", "residual16", "16-bit residual stream"),
              ("--no-channel-ln", "channel-ln", "per-channel LN outputs"),
              ("--no-channel-gelu", "channel-gelu", "per-channel GELU outputs"),
              ("--no-channel-attn", "channel-attn", "per-channel attention context")]
    for flag, short, what in extras:
        if flag not in closest:
            continue
        i = closest.index(flag)
        flags = closest[:i] + closest[i + (2 if flag == "--residual-bits" else 1):]
        out.append(("ablation:fqvit-like+" + short, "FQ-ViT-like + " + what, base + flags,
                    ("minmax", True, False), "ablation"))
    out.append(("ablation:default-residual8", "default, 8-bit residual stream", base + ["--residual-bits", "8"],
                ("minmax", True, False), "ablation"))
    return out, closest


def parse_reference(path):
    """FQ-ViT rows of reference-results.md -> {(method, pts, lis): {model: (top1, top5, agree)}} and FP32."""
    ref, fp32 = {}, {}
    if not os.path.exists(path):
        return ref, fp32
    header = None
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 7:
            continue
        if cells[0] == "method":
            header = cells
            continue
        if header is None or not (cells[0].startswith("FQ-ViT") or cells[0].startswith("timm FP32")):
            continue
        values = {}
        # "DeiT-T top-1 | top-5 | agree | ViT-T augreg top-1 | top-5 | agree"
        for i, h in enumerate(header[1:], start=1):
            for name, model in REF_COLUMNS.items():
                if h.startswith(name):
                    try:
                        values[model] = tuple(float(cells[i + k]) for k in range(3))
                    except (ValueError, IndexError):
                        pass
        if cells[0].startswith("timm FP32"):
            fp32 = values
            continue
        name = cells[0][len("FQ-ViT"):].strip()
        parts = [p.strip().lower() for p in name.split("+")]
        key = (parts[0], "pts" in parts, "lis" in parts)
        ref[key] = values
    return ref, fp32


def run(cmd, log):
    t0 = time.time()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log.write("$ %s\n%s%s(%.1f s, rc %d)\n" % (" ".join(cmd), p.stdout[-2000:], p.stderr[-2000:], time.time() - t0, p.returncode))
    log.flush()
    if p.returncode != 0:
        raise RuntimeError("%s failed (rc %d): %s" % (cmd[0], p.returncode, p.stderr.strip()[-500:]))
    return json.loads(p.stdout)


def fmt(v, digits=2):
    return "-" if v is None else ("%.*f" % (digits, v))


def markdown(results, ref, fp32, closest, meta):
    lines = []
    w = lines.append
    w("# Accuracy: FQ-ViT's calibrators in libvitint")
    w("")
    w("Generated by `bench/accuracy_table.py` (%s, libvitint %s, %s)." % (meta["date"], meta["commit"], meta["engine"]))
    w("Protocol as in reference-results.md: calibration on the first %d images of" % CALIB)
    w("`imagenet-val-1300/val.txt`, evaluation on the other 1200; *agree* = top-1 equal to timm FP32's top-1.")
    w("W8A8 everywhere (int8 per-channel weights, uint8 activations); the attention probabilities are")
    w("uint8 (8) or 4-bit Log-Int-Softmax (LIS). Unless marked *FQ-ViT-like*, libvitint's extras are on")
    w("(its defaults): 16-bit residual stream, per-channel LayerNorm / GELU / attention-context quantizers")
    w("folded into the next layer, GELU on a 16-bit fixed-point input, LIS rows renormalized.")
    w("*FQ-ViT-like* rows turn them off: `%s`;" % " ".join(closest))
    w("the *FQ-ViT-like + ...* rows (MinMax + PTS, 8-bit attention) turn one of them back on.")
    w("FQ-ViT columns: its official code (fake quantization, float GELU and residual adds) on the same")
    w("split, from reference-results.md; `-` where FQ-ViT has no such row.")
    w("")
    w("## Top-1 at a glance (FQ-ViT README style)")
    w("")
    heads = [SHORT[m] for m in results]
    w("| method | attn bits | " + " | ".join("%s libvitint | %s FQ-ViT" % (h, h) for h in heads) + " |")
    w("|---|---|" + "---|---|" * len(heads))
    w("| FP32 (timm) | 32 | " + " | ".join("%s | %s" % (fmt(fp32.get(m, (None,))[0]), fmt(fp32.get(m, (None,))[0])) for m in results) + " |")
    order = [r for r in next(iter(results.values()))["rows"]]
    for row in order:
        cells = []
        for m in results:
            r = results[m]["rows"][row]
            fq = ref.get(tuple(r["fqvit_key"]), {}).get(m) if r["group"] != "ablation" else None
            cells.append("%s | %s" % (fmt(r.get("top1")), fmt(fq[0]) if fq else "-"))
        r0 = results[next(iter(results))]["rows"][row]
        label = r0["label"] + (" (default)" if r0.get("default") else "")
        w("| %s | %d | %s |" % (label, r0["attention_bits"], " | ".join(cells)))
    for m in results:
        w("")
        w("## %s (`%s`)" % (SHORT[m], m))
        w("")
        f = fp32.get(m)
        if f:
            w("timm FP32 on the evaluation split: top-1 %.2f, top-5 %.2f." % (f[0], f[1]))
            w("")
        w("| method | PTS | attn | top-1 | top-5 | agree | FQ-ViT top-1 | FQ-ViT top-5 | FQ-ViT agree | convert s |")
        w("|---|---|---|---|---|---|---|---|---|---|")
        for row in order:
            r = results[m]["rows"][row]
            fq = ref.get(tuple(r["fqvit_key"]), {}).get(m) if r["group"] != "ablation" else None
            label = r["label"] + (" (default)" if r.get("default") else "")
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                label, "yes" if r["pts"] else "no", "LIS 4" if r["attention_bits"] == 4 else "8",
                fmt(r.get("top1")), fmt(r.get("top5")), fmt(r.get("agreement")),
                fmt(fq[0]) if fq else "-", fmt(fq[1]) if fq else "-", fmt(fq[2]) if fq else "-",
                fmt(r.get("convert_seconds"), 0)))
    w("")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("VITINT_BUILD", os.path.join(REPO, "build")),
                    help="build directory with converter/vitint-convert and tools/vitint-eval (env VITINT_BUILD)")
    ap.add_argument("--shared", default=os.environ.get("VITINT_SHARED", os.path.join(REPO, "..", "shared")),
                    help="shared data (env VITINT_SHARED, default ../shared)")
    ap.add_argument("--work", default="/tmp/vitint-accuracy", help="where converted models and the log go")
    ap.add_argument("--md", help="write the Markdown table here (e.g. docs/accuracy.md)")
    ap.add_argument("--json", help="write / resume the results JSON here")
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--only", nargs="*", help="run only these row keys (e.g. minmax+pts omse)")
    ap.add_argument("--threads", type=int, default=0, help="vitint-eval threads (0: its default)")
    ap.add_argument("--fresh", action="store_true", help="ignore results already in --json")
    ap.add_argument("--commit", help="libvitint version to print (default: git HEAD of this checkout)")
    args = ap.parse_args()

    convert = os.path.join(args.build, "converter", "vitint-convert")
    evaluate = os.path.join(args.build, "tools", "vitint-eval")
    for tool in (convert, evaluate):
        if not os.access(tool, os.X_OK):
            sys.exit("missing %s: build it (cmake --build BUILD --target vitint-convert vitint-eval)" % tool)
    data = os.path.join(args.shared, "data", "imagenet-val-1300")
    val = os.path.join(data, "val.txt")
    ref, fp32 = parse_reference(os.path.join(args.shared, "docs", "reference-results.md"))
    help_text = subprocess.run([convert, "--help"], stdout=subprocess.PIPE, text=True).stdout
    rows, closest = configs(help_text)
    os.makedirs(args.work, exist_ok=True)
    log = open(os.path.join(args.work, "log.txt"), "a")

    saved = {}
    if args.json and os.path.exists(args.json) and not args.fresh:
        saved = json.load(open(args.json)).get("models", {})
    commit = args.commit or subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE,
                                           text=True).stdout.strip()
    meta = {"date": datetime.date.today().isoformat(), "commit": commit or "?", "engine": "?"}
    results = {}
    for model in args.models:
        ckpt = os.path.join(args.shared, "models", model)
        logits = os.path.join(data, "timm_fp32_logits", model + ".npy")
        res = {"rows": {}}
        results[model] = res
        for key, label, flags, fq_key, group in rows:
            row = {"label": label, "flags": flags, "fqvit_key": list(fq_key), "group": group,
                   "method": fq_key[0], "pts": fq_key[1], "attention_bits": 4 if fq_key[2] else 8}
            row["default"] = key == "minmax+pts"  # the converter's defaults
            old = saved.get(model, {}).get("rows", {}).get(key)
            if old and old.get("flags") == flags and "top1" in old:
                row.update({k: old[k] for k in ("top1", "top5", "agreement", "convert_seconds", "engine") if k in old})
                res["rows"][key] = row
                meta["engine"] = row.get("engine", meta["engine"])
                continue
            if args.only is not None and key not in args.only:
                res["rows"][key] = row
                continue
            out = os.path.join(args.work, "%s.%s.vti" % (model, key.replace(":", "_").replace("+", "_")))
            try:
                c = run([convert, ckpt, "-o", out, "--calib-list", val, "--calib-root", data, "--calib-count", str(CALIB),
                         "--force", "--quiet", "--json"] + flags, log)
                cmd = [evaluate, out, "--list", val, "--root", data, "--skip", str(CALIB), "--reference-logits", logits,
                       "--quiet", "--json"]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                e = run(cmd, log)
                row.update({"top1": e["top1"], "top5": e["top5"], "agreement": e.get("agreement"),
                            "convert_seconds": c.get("seconds"), "engine": e.get("engine")})
                meta["engine"] = e.get("engine", meta["engine"])
                print("%-13s %-28s top-1 %6.2f  top-5 %6.2f  agree %6.2f" % (SHORT[model], label, e["top1"], e["top5"],
                                                                             e.get("agreement", -1)), flush=True)
            except RuntimeError as err:
                row["error"] = str(err)
                print("%-13s %-28s FAILED: %s" % (SHORT[model], label, err), file=sys.stderr, flush=True)
            finally:
                if os.path.exists(out):
                    os.remove(out)
            res["rows"][key] = row
            if args.json:
                with open(args.json + ".tmp", "w") as f:
                    json.dump({"meta": meta, "models": {**saved, **results}}, f, indent=1)
                os.replace(args.json + ".tmp", args.json)

    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump({"meta": meta, "fqvit_reference": {"+".join(map(str, k)): v for k, v in ref.items()},
                       "models": {**saved, **results}}, f, indent=1)
        os.replace(args.json + ".tmp", args.json)
    md = markdown(results, ref, fp32, closest, meta)
    if args.md:
        write_md(args.md, md)
    print(md)


BEGIN, END = "<!-- accuracy-table:begin -->", "<!-- accuracy-table:end -->"


def write_md(path, md):
    """Replaces the generated part of an existing document (between the
    markers), or writes the whole file."""
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        # The document has its own title: drop the generated one.
        body = md.split("\n", 2)[2] if md.startswith("# ") else md
        text = head + BEGIN + "\n" + body.strip("\n") + "\n" + END + tail
    else:
        text = md
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    main()
