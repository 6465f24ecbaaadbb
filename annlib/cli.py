"""Command line: `annlib demo`, `annlib info`, `annlib serve`, `annlib tune`, `annlib bench`, `annlib bench-plot`."""
from __future__ import annotations

import argparse
import sys


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(k=args.k)
    return 0


def _cmd_info(args) -> int:
    from . import __version__, available_simd_levels, simd_level

    print(f"annlib {__version__}")
    print(f"SIMD level in use: {simd_level()} (supported: {', '.join(available_simd_levels())}; "
          "lower it with ANNLIB_SIMD_LEVEL)")
    return 0


def _cmd_serve(args) -> int:
    from .service.options import options_from_args

    try:
        from .service.server import serve
    except ImportError as exc:
        print(f"annlib serve needs the service extra: pip install \"annlib[service]\" ({exc})", file=sys.stderr)
        return 2
    return serve(options_from_args(args))


def _cmd_bench(args) -> int:
    from .benchmarks.runner import main_from_args

    return main_from_args(args)


def _cmd_bench_plot(args) -> int:
    from .benchmarks.plot import main_from_args

    return main_from_args(args)


def _cmd_tune(args) -> int:
    from .tuning.cli import run_tune

    return run_tune(args)


def build_parser() -> argparse.ArgumentParser:
    from .version import __version__

    parser = argparse.ArgumentParser(prog="annlib", description="annlib vector search")
    parser.add_argument("--version", action="version", version=f"annlib {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="build and search the bundled SIFT-20k subset; print recall and QPS")
    demo.add_argument("-k", type=int, default=10, help="neighbors per query (default 10)")
    demo.set_defaults(func=_cmd_demo)
    info = sub.add_parser("info", help="version and SIMD level")
    info.set_defaults(func=_cmd_info)
    from .service.options import add_arguments

    serve = sub.add_parser("serve", help="serve saved indexes over gRPC (needs annlib[service])")
    add_arguments(serve)
    serve.set_defaults(func=_cmd_serve)
    from .tuning.cli import add_arguments as add_tune_arguments

    tune = sub.add_parser("tune", help="choose search settings for a target recall or latency (autotuner)")
    add_tune_arguments(tune)
    tune.set_defaults(func=_cmd_tune)
    from .benchmarks.runner import add_arguments as add_bench_arguments

    bench = sub.add_parser("bench", help="recall/QPS of annlib and the peers on a dataset (JSON lines; "
                                          "plot with annlib bench-plot)")
    add_bench_arguments(bench)
    bench.set_defaults(func=_cmd_bench)
    from .benchmarks.plot import add_arguments as add_plot_arguments

    bench_plot = sub.add_parser("bench-plot", help="recall-QPS plots and the best-QPS table from bench results")
    add_plot_arguments(bench_plot)
    bench_plot.set_defaults(func=_cmd_bench_plot)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, ImportError, TimeoutError) as exc:
        # What a user can fix (an argument, a file, the network, a missing extra): one
        # line naming the command, not a traceback.
        print(f"annlib {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
