"""annlib.benchmarks: the side-by-side benchmark suite behind `bench/run.py`,
`bench/plot.py` and `annlib bench`.

    recall      recall@k the way ann-benchmarks computes it (distance threshold)
    algorithms  annlib and the peers behind one fit / query / batch_query interface
    grids       which builds and query settings each algorithm is swept over
    runner      builds each configuration in its own process, sweeps, writes JSON lines
    plot        recall-QPS plots with Pareto frontiers, and the Markdown table
    refine      bisection near the recall targets after the grid
    paired      a run's summary cells re-measured in alternating rounds in one process
    autopilot_check  what autopilot() gives a user, timed against a run's best peer
"""
