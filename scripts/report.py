"""Report of a study: python scripts/report.py <run folder | experiment name> [--out reports] [--name NAME] [--wandb/--no-wandb]"""

import argparse

from rxlit.analysis.report import write_report

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", help="a study run folder (holding results.json) or a study name")
    parser.add_argument("--out", default="reports", help="reports root (default: reports)")
    parser.add_argument("--name", default=None, help="report folder name (default: the study's name)")
    parser.add_argument("--wandb", action=argparse.BooleanOptionalAction, default=None,
                        help="log to W&B offline (default: when the study ran with logger=wandb)")
    args = parser.parse_args()
    print(write_report(args.target, args.out, args.name, args.wandb))
