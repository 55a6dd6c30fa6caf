"""Compare models side by side:
    python scripts/compare.py <eval or train.py output folders ...> [--out outputs/compare/NAME] [--wandb auto]

Writes compare.md (one table with intervals, the rank correlation between model and explanation
Lipschitz across the models), compare.csv, compare.json and lipschitz_scatter.png, and logs them to W&B.
"""

import argparse
import sys
import time

from rxlit.analysis.compare import compare

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folders", nargs="+", help="eval.py output folders (a -m multirun folder counts as its jobs) "
                                                   "or train.py output folders (their last xai/ evaluation)")
    parser.add_argument("--out", default=None, help="output folder (default: outputs/compare/<date_time>)")
    parser.add_argument("--wandb", default="auto", choices=["auto", "offline", "online", "disabled"],
                        help="W&B mode (auto: WANDB_MODE if set, else offline)")
    args = parser.parse_args()
    out = args.out or f"outputs/compare/{time.strftime('%Y-%m-%d_%H-%M-%S')}"
    try:
        result = compare(args.folders, out, args.wandb)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    print(result["markdown"].read_text())
    print(f"written to {out}")
