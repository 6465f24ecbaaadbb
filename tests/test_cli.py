"""Command line: the demo on the bundled dataset, info, and the SIMD override."""
import os

import pytest

import annlib
from annlib.cli import main
from annlib.demo import load_demo_data, run_demo
from conftest import run_python


@pytest.mark.parametrize("k", [10, 100])
def test_demo_shows_the_tuned_quantized_index_next_to_exact_search(k):
    lines = []
    rows = run_demo(k=k, out=lines.append)
    by = {r["index"]: r for r in rows}
    assert rows[0]["index"] == "exact brute force, float32" and rows[0]["recall"] == 1.0
    # Tuned on database rows, measured on the test queries: close to the targets.
    assert by["quantized + reorder, tuned 0.95"]["recall"] >= 0.9
    assert by["quantized + reorder, tuned 0.99"]["recall"] >= 0.97
    assert by["brute force, binned 0.9"]["recall"] >= 0.88
    assert all(r["qps"] > 0 and r["single_us"] > 0 for r in rows)
    text = "\n".join(lines)
    assert f"recall@{k}" in text and "recall@10" not in text.replace(f"recall@{k}", "") and "threads" in text
    for row, line in zip(rows[1:], lines[-len(rows) + 1:]):
        # a variant slower than exact search says so
        assert line.startswith(row["index"]) and ("not faster than exact" in line) == (row["speedup"] <= 1.0)


def test_demo_refuses_k_beyond_the_bundled_ground_truth():
    with pytest.raises(ValueError, match="between 1 and 100"):
        run_demo(k=101)


def test_bundled_dataset_is_small_and_real():
    train, test, truth = load_demo_data()
    assert train.shape == (20000, 128) and test.shape == (500, 128) and truth.shape == (500, 100)
    assert (train == train.round()).all() and train.max() <= 255


def test_cli_info(capsys):
    assert main(["info"]) == 0
    assert "SIMD level in use" in capsys.readouterr().out


def python_code(code, **env):
    return run_python("-c", code, capture_output=True, text=True, env={**os.environ, **env}, timeout=120)


@pytest.mark.parametrize("level", ["scalar", "avx2", "avx2_vnni", "neon"])
def test_env_lowers_simd_level(level):
    import annlib
    if level not in annlib.available_simd_levels():
        pytest.skip(f"{level} not supported here")
    out = python_code("import annlib; print(annlib.simd_level())", ANNLIB_SIMD_LEVEL=level)
    assert out.stdout.strip() == level, out.stderr


def test_env_cannot_raise_or_misname_level():
    out = python_code("import annlib; print(annlib.simd_level())", ANNLIB_SIMD_LEVEL="bogus")
    assert out.returncode != 0 and "unknown SIMD level" in out.stderr


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"annlib {annlib.__version__}"


@pytest.mark.parametrize("argv, message", [
    (["tune", "--index", "/no/such/index", "--target-recall", "0.9"], "annlib tune: error: "),
    (["bench", "sift-128-euclidean", "--data-dir-is-not-an-option"], None),  # argparse's own usage error
])
def test_user_errors_are_one_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ANNLIB_DATA_DIR", str(tmp_path))
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse: usage line + error, exit 2
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    if message is not None:
        assert err.startswith(message) and len(err.strip().splitlines()) == 1, err


def test_offline_fetch_names_the_command(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("ANNLIB_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ANNLIB_DATASET_URL", "http://127.0.0.1:9")
    code = main(["bench", "sift-128-euclidean"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith("annlib bench: error: could not download") and "try again" in err


def test_detected_simd_level_matches_the_cpu_flags_linux_reports():
    # The dispatcher reads CPUID and XCR0 itself; Linux's view of the same CPU is independent.
    import platform
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() not in ("x86_64", "AMD64") or not cpuinfo.exists():
        pytest.skip("x86-64 Linux only")
    flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
    avx2 = {"avx", "avx2", "fma", "f16c"} <= flags
    avx512 = avx2 and {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags
    vnni = avx512 and "avx512_vnni" in flags
    runs = {"scalar": True, "avx2": avx2, "avx2_vnni": avx2 and "avx_vnni" in flags, "avx512": avx512,
            "avx512_vnni": vnni, "avx512_bf16": vnni and "avx512_bf16" in flags}
    expected = [level for level, ok in runs.items() if ok]
    assert annlib.available_simd_levels() == expected
    assert annlib._core.max_simd_level() == expected[-1]


def test_arm_levels_match_the_cpu_features_linux_reports():
    # getauxval's HWCAP_ASIMDDP against /proc/cpuinfo's "asimddp" (absent under qemu-user,
    # which shows the host's cpuinfo).
    import platform
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    if platform.machine() not in ("aarch64", "arm64") or not cpuinfo.exists():
        pytest.skip("AArch64 Linux only")
    features = [line.split(":", 1)[1].split() for line in cpuinfo.read_text().splitlines()
                if line.startswith("Features")]
    if not features:
        pytest.skip("no AArch64 feature list in /proc/cpuinfo")
    expected = ["scalar", "neon"] + (["neon_dotprod"] if "asimddp" in features[0] else [])
    assert annlib.available_simd_levels() == expected


def test_env_picks_the_best_level_at_or_below_the_one_asked_for():
    # A CPU may lack a level below its best (AVX-512 CPUs without AVX-VNNI, e.g. Zen 4, Ice
    # Lake: no avx2_vnni); asking for such a level gives the best supported one below it.
    import annlib
    known = ["scalar", "avx2", "avx2_vnni", "avx512", "avx512_vnni", "avx512_bf16"]
    supported = annlib.available_simd_levels()
    if not set(supported) <= set(known):
        pytest.skip("the x86-64 levels")
    for asked in known[1:]:
        expected = [level for level in supported if known.index(level) <= known.index(asked)][-1]
        out = python_code("import annlib; print(annlib.simd_level())", ANNLIB_SIMD_LEVEL=asked)
        assert out.stdout.strip() == expected, (asked, out.stderr)


def test_amx_can_be_turned_off():
    out = python_code("from annlib import _core; print(_core.amx_usable())", ANNLIB_DISABLE_AMX="1")
    assert out.stdout.strip() == "False", out.stderr


def test_progress_bars_only_on_a_terminal_by_default(monkeypatch):
    import io
    import sys

    from annlib._progress import progress_bar, wanted

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert not wanted(None) and wanted(True) and not wanted(False)
    assert progress_bar(range(3), progress=None).disable
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert wanted(None) and not progress_bar(range(3), progress=None).disable
