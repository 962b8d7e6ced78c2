"""Profile report rendering: the per-phase table rows, PNG charts and the HTML page, from a
summary made by `rig.profile.report.summarize` (the data model and the analysis live there;
this module only draws and writes)."""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from rig.profile.icount import LABEL as ICOUNT_LABEL
from rig.profile.report import EXTRA_WINDOWS, ProfileRun, as_jsonable
from rig.protocol import PHASES


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def figures(summary: Mapping[str, Any], run: ProfileRun | None = None) -> dict[str, bytes]:
    """PNG charts: per-phase bars per strategy, sparse/full ratios, energy, class mix,
    and (with the run) instructions per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = list(summary["strategies"])
    core = summary["labels"]["cycles"]
    main_core = core.split(", ", 1)[1].rstrip(")")
    out: dict[str, bytes] = {}
    x = np.arange(len(PHASES))
    width = 0.8 / max(len(strategies), 1)

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for i, s in enumerate(strategies):
        ph = summary["strategies"][s]["phases"]
        macs = [ph[p]["macs"] for p in PHASES]
        insns = [ph[p]["insns"] or 0 for p in PHASES]
        cyc = [ph[p]["cycles"].get(main_core, {}).get("nominal", 0) for p in PHASES]
        for ax, series in zip(axes, (macs, insns, cyc), strict=True):
            ax.bar(x + i * width, series, width, label=s)
    for ax, title in zip(axes, (summary["labels"]["macs"], summary["labels"]["insns"], core),
                         strict=True):
        ax.set_xticks(x + width * (len(strategies) - 1) / 2, PHASES)
        ax.set_title(f"{title} per step")
        ax.legend()
    fig.suptitle(f"{summary['board']}: per-phase cost per TRAIN_STEP")
    out["phases.png"] = _png(fig)
    plt.close(fig)

    others = [s for s in strategies if s != "full"]
    if "full" in strategies and others:
        fig, ax = plt.subplots(figsize=(10, 4))
        kinds = ("macs", "insns", "cycles")
        bw = 0.8 / (len(kinds) * len(others))
        for j, s in enumerate(others):
            ph = summary["strategies"][s]["phases"]
            for i, kind in enumerate(kinds):
                ratios = [(ph[p].get("ratio_vs_full") or {}).get(kind) or 0 for p in PHASES]
                ax.bar(x + (j * len(kinds) + i) * bw, ratios, bw,
                       label=f"{s}: {kind}")
        ax.axhline(1.0, color="k", lw=0.5)
        ax.set_xticks(x + bw * (len(kinds) * len(others) - 1) / 2, PHASES)
        ax.set_ylabel("sparse / full")
        ax.set_title("Predicted MAC ratio vs measured instruction and model-cycle ratio")
        ax.legend(fontsize=8)
        out["ratios.png"] = _png(fig)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = np.zeros(len(strategies))
    for p in PHASES:
        vals = np.array([(summary["strategies"][s]["phases"][p].get("energy_j") or 0) * 1e6
                         for s in strategies])
        ax.bar(strategies, vals, bottom=bottom, label=p)
        bottom += vals
    ax.set_ylabel("µJ per step")
    ax.set_title(f"{summary['labels']['energy']} per step ({summary['power_model']['basis']})",
                 fontsize=9)
    ax.legend()
    out["energy.png"] = _png(fig)
    plt.close(fig)

    colors: Any = plt.get_cmap("tab20")(np.arange(20))  # the 20 colours of the map
    fig, axes = plt.subplots(1, len(strategies), figsize=(6 * len(strategies), 4),
                             squeeze=False)
    for ax, s in zip(axes[0], strategies, strict=True):
        ph = summary["strategies"][s]["phases"]
        classes = sorted({c for p in PHASES for c in ph[p]["classes"]},
                         key=lambda c: -sum(ph[p]["classes"].get(c, 0) for p in PHASES))
        bottom = np.zeros(len(PHASES))
        for i, c in enumerate(classes[:12]):
            vals = np.array([ph[p]["classes"].get(c, 0) for p in PHASES])
            ax.bar(PHASES, vals, bottom=bottom, label=c, color=colors[i % len(colors)])
            bottom += vals
        rest = np.array([sum(v for c, v in ph[p]["classes"].items() if c not in classes[:12])
                         for p in PHASES])
        ax.bar(PHASES, rest, bottom=bottom, label="other classes", color="0.6")
        ax.set_title(f"{s}: instruction classes per step")
        ax.legend(fontsize=7)
    out["classes.png"] = _png(fig)
    plt.close(fig)

    if run is not None and run.icount:
        fig, ax = plt.subplots(figsize=(10, 4))
        for sr in run.runs:
            ax.plot([s.index for s in sr.steps],
                    [s.icount.total.insns if s.icount else 0 for s in sr.steps], label=sr.strategy)
        ax.set_xlabel("step")
        ax.set_ylabel(ICOUNT_LABEL)
        ax.set_title("Instructions per TRAIN_STEP")
        ax.legend()
        out["steps.png"] = _png(fig)
        plt.close(fig)
    return out


def _fmt(v: Any, digits: int = 0) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def phase_rows(summary: Mapping[str, Any], ratio_digits: int = 3) -> list[list[str]]:
    """Rows of the main table (columns: `TABLE_HEAD`), per TRAIN_STEP, mean over the run."""
    core = summary["labels"]["cycles"].split(", ", 1)[1].rstrip(")")
    rows = []
    for s, st in summary["strategies"].items():
        for p in (*PHASES, *EXTRA_WINDOWS):
            ph = st["phases"][p]
            cyc = ph["cycles"].get(core, {})
            ratio = ph.get("ratio_vs_full") or {}
            rows.append([
                s, p, _fmt(ph["macs"]), _fmt(ph["insns"]), _fmt(ph["insns_per_mac"], 2),
                _fmt(cyc.get("nominal")) if "nominal" in cyc else
                ("n/a" if "not_applicable" in cyc else "–"),
                (f"{cyc['low']:,.0f}–{cyc['high']:,.0f}" if "nominal" in cyc else "–"),
                (f"{ph['latency_s'] * 1e3:.3f}" if ph.get("latency_s") is not None else "–"),
                (f"{ph['energy_j'] * 1e6:.2f}" if ph.get("energy_j") is not None else "–"),
                "/".join(f"{ratio[k]:.{ratio_digits}f}" if ratio.get(k) is not None else "–"
                         for k in ("macs", "insns", "cycles")) if ratio else "",
                (f"{ph['ipm_deviation']:+.1%}{' FLAG' if ph.get('flag') else ''}"
                 if "ipm_deviation" in ph else ""),
                _fmt(ph.get("device_counter")),
            ])
    return rows


TABLE_HEAD = ["strategy", "phase", "MACs (golden)", "instr (QEMU)", "instr/MAC",
              "cycles (model)", "cycles band", "latency ms", "energy µJ (model)",
              "/full: MACs / instr / cycles", "instr/MAC vs full", "device counter"]


def render_html(summary: Mapping[str, Any], pngs: Mapping[str, bytes]) -> str:
    esc = html.escape
    lab = summary["labels"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>tinyrig profile</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;"
        "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "th{background:#eee}td:first-child,td:nth-child(2){text-align:left}"
        ".flag{color:#b00}.note{color:#555;font-size:12px}</style></head><body>",
        f"<h1>tinyrig profile: {esc(summary['board'])} ({esc(summary['cpu'])}, "
        f"{summary['clock_hz'] / 1e6:g} MHz)</h1>",
        f"<p class='note'>command: <code>{esc(summary.get('command') or '')}</code><br>"
        f"target {esc(summary['target'])}, firmware build {esc(summary['build_hash'][:12])}; "
        f"device counters: {esc(summary['counter_label'])}<br>"
        f"spec: {esc(json.dumps(summary.get('spec', {})))}"
        + "".join(f"<br>{esc(n)}" for n in summary.get("notes", []))
        + "".join(f"<br><span class='flag'>measurement error: {esc(e)}</span>"
                  for e in summary.get("measurement_errors", [])) + "</p>",
        "<h2>Headline</h2><ul>",
    ]
    core = lab["cycles"].split(", ", 1)[1].rstrip(")")
    for s, st in summary["strategies"].items():
        step = st["phases"]["step"]
        cyc = step["cycles"].get(core, {})
        line = (f"<b>{esc(s)}</b>: {st['steps']} steps ({st['skipped']} skipped), "
                f"{_fmt(step['macs'])} MACs/step, {_fmt(step['insns'])} {esc(lab['insns'])}"
                f"/step, {_fmt(cyc.get('nominal'))} {esc(lab['cycles'])}/step → "
                f"{(step.get('latency_s') or 0) * 1e3:.2f} ms, "
                f"{(step.get('energy_j') or 0) * 1e6:.1f} µJ {esc(lab['energy'])}")
        r = st.get("step_ratio_vs_full")
        if r:
            line += (f"; vs full: MACs ×{r['macs']:.3f}, instructions ×{r['insns']:.3f}, "
                     f"cycles ×{(r['cycles'] or 0):.3f}")
        sel = st.get("select")
        if sel:
            line += (f"; SELECT (×{sel['count']}): {_fmt(sel['macs'])} MACs, "
                     f"{_fmt(sel['insns'])} instructions each")
        em = st.get("energy_measured")
        if em:
            line += f"; {esc(em['label'])} {em['per_step_j'] * 1e6:.1f} µJ/step"
        final = st["epochs"][-1] if st["epochs"] else None
        if final:
            line += f"; test acc device {final['device_acc']:.4f}"
        line += "" if st["ok"] else " <span class='flag'>(device ≠ golden!)</span>"
        parts.append(f"<li>{line}</li>")
    parts.append("</ul><h2>Per phase</h2><table><tr>")
    parts += [f"<th>{esc(h)}</th>" for h in TABLE_HEAD]
    parts.append("</tr>")
    for row in phase_rows(summary):
        cls = " class='flag'" if row[-2].endswith("FLAG") else ""
        parts.append(f"<tr{cls}>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    parts.append("</table>")
    parts.append(
        f"<p class='note'>loss ⊂ forward (softmax, loss and output error; the protocol's four "
        f"counters include it in forward). other = inside the TRAIN_STEP but in no phase. "
        f"Flag: instructions/MAC differs from full's by more than "
        f"±{summary['scaling_threshold']:.0%} (see docs/profiling.md). Device counter: "
        f"{esc(lab['counters'])}. Cycles are "
        f"{esc(lab['cycles'])}: Arm TRM timings, zero wait states, band = what the model "
        f"cannot know. Energy: {esc(lab['energy'])}, "
        f"{esc(summary['power_model']['basis'])}.</p>")
    fits = [(s, p, st["phases"][p]["fit"]) for s, st in summary["strategies"].items()
            for p in PHASES if st["phases"][p].get("fit")]
    if fits:
        parts.append("<h2>Per-step fit: instructions = a·MACs + b</h2><table><tr><th>strategy"
                     "</th><th>phase</th><th>a (instr/MAC, marginal)</th><th>b (instr/step, "
                     "fixed)</th><th>r²</th></tr>")
        for s, p, f in fits:
            parts.append(f"<tr><td>{esc(s)}</td><td>{p}</td><td>{f['insns_per_mac']:.3f}</td>"
                         f"<td>{f['fixed_insns']:,.0f}</td><td>{f['r2']:.4f}</td></tr>")
        parts.append("</table>")
    if summary["flags"]:
        parts.append("<h2>Flags</h2><ul>")
        parts += [f"<li class='flag'>{esc(f['strategy'])} / {esc(f['phase'])} "
                  f"[{esc(f['kind'])}]: {esc(f['message'])}</li>" for f in summary["flags"]]
        parts.append("</ul>")
    for name, data in pngs.items():
        parts.append(f"<h3>{esc(name)}</h3><img src='data:image/png;base64,"
                     f"{base64.b64encode(data).decode()}'>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(run: ProfileRun, summary: Mapping[str, Any], out_dir: Path,
                 charts: bool = True) -> dict[str, Path]:
    """summary.json, profile.json (summary + every step), report.html, PNG charts."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    detail = dict(summary)
    detail["runs"] = [{"strategy": sr.strategy,
                       "steps": [{"epoch": s.epoch, "index": s.index, "skipped": s.skipped,
                                  "k": s.k, "golden_k": s.golden_k, "counters": s.counters,
                                  "macs": s.macs, "ok": s.ok,
                                  "icount": s.icount.as_dict() if s.icount else None}
                                 for s in sr.steps],
                       "selects": [{"epoch": x.epoch, "macs": x.macs,
                                    "icount": x.icount.as_dict() if x.icount else None}
                                   for x in sr.selects],
                       "measured": [as_jsonable(e) for e in sr.measured]}
                      for sr in run.runs]
    paths["summary"] = out_dir / "summary.json"
    paths["summary"].write_text(json.dumps(as_jsonable(summary), indent=1), encoding="utf-8")
    paths["json"] = out_dir / "profile.json"
    paths["json"].write_text(json.dumps(as_jsonable(detail), indent=1), encoding="utf-8")
    pngs = figures(summary, run) if charts else {}
    for name, data in pngs.items():
        p = out_dir / name
        p.write_bytes(data)
        paths[name] = p
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(render_html(summary, pngs), encoding="utf-8")
    return paths
