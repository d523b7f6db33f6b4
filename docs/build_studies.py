"""Build the studies gallery: run every study in analyses/ and write docs/studies/.

    python docs/build_studies.py            # full studies (tens of minutes on 2 cores)
    python docs/build_studies.py --quick    # the CI-sized versions (a few minutes)
    python docs/build_studies.py NAME ...   # some studies only

Writes ``docs/studies/index.md`` — one entry per study: its title and claim, its figure(s), the
table of simulated vs theory values with z-scores, and a link to the study's README — together
with ``docs/studies/figures/*.png`` and ``docs/studies/results.json``. The committed gallery is
the output of a full build.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "studies"


def main(argv: list[str] | None = None) -> int:
    from stochdyn.studies import find_studies, reproduce

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    out = Path(args.out)
    studies = find_studies(ROOT / "analyses")
    names = args.names or sorted(studies, key=lambda n: (not n.startswith("showcase"), n))  # the poster first
    if not args.names and out.exists():
        shutil.rmtree(out)
    res = reproduce(names, out=out, quick=args.quick, studies_dir=ROOT / "analyses")
    for pdf in (out / "figures").glob("*.pdf"):
        pdf.unlink()  # the gallery shows PNGs; `stochdyn reproduce` writes PDFs for papers
    (out / "report.md").unlink(missing_ok=True)
    if args.names and (out / "results.json").exists():
        pass
    lines = ["# Studies: every claim of the chapter, checked", "",
             "Each study simulates one claim of the chapter this toolkit is built from, computes the exact "
             "theory (at finite step, batch or population where that differs from the limit), and records "
             "z = (simulated − theory) / standard error. Run them yourself with "
             f"`stochdyn reproduce --out DIR{' --quick' if args.quick else ''}`; each study's folder in "
             "`analyses/` holds its spec, its script and a README with the model, the theory and its source.",
             "", f"Built with stochdyn {res['stochdyn_version']}{' (quick mode)' if args.quick else ''}.", ""]
    for name in names:
        st = studies[name]
        recs = [r for r in res["records"] if r["study"] == name]
        bnds = [b for b in res.get("bounds", []) if b["study"] == name]
        n_ok = sum(r["passed"] for r in recs)
        lines += [f"## {st.title}", "", f"*{st.claim}*", ""]
        for fig in dict.fromkeys([r["figure"] for r in recs if r["figure"]] + [b["figure"] for b in bnds if b["figure"]]):
            lines += [f"![{st.title}]({fig})", ""]
        if name in res["errors"]:
            lines += ["**This study failed with an error in this build.**", ""]
        if recs:
            lines += [f"{n_ok} of {len(recs)} checks within |z| ≤ {st.z_bound:g}:", "",
                      "| quantity | simulated | SE | theory | z |", "|---|---|---|---|---|"]
            lines += [f"| {r['quantity']} | {r['simulated']:.6g} | {r['standard_error']:.2g} | {r['theory']:.6g} | "
                      f"{r['z']:+.2f}{'' if r['passed'] else ' ✗'} |" for r in recs]
            lines.append("")
        if bnds:
            lines += [f"{sum(b['passed'] for b in bnds)} of {len(bnds)} bounds hold (quantities without Monte Carlo "
                      "error; a timed one is measured on the machine that built this page):", "",
                      "| bound | value | limit |", "|---|---|---|"]
            lines += [f"| {b['quantity']}{' (timed)' if b['timed'] else ''} | {b['value']:.4g} {b['units']} | "
                      f"{b['relation']} {b['limit']:.4g}{'' if b['passed'] else ' ✗'} |" for b in bnds]
            lines.append("")
        lines += [f"Model, theory and source: [analyses/{name}/README.md](../../analyses/{name}/README.md)", ""]
    (out / "index.md").write_text("\n".join(lines))
    print(f"wrote {out / 'index.md'}")
    return 1 if res["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
