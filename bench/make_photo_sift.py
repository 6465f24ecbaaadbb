"""Makes a SIFT dataset of millions of descriptors from photographs: a real dataset whose
index does not fit in a CPU's last-level cache (the dev sets' indexes do on large-cache
servers).

    apt-get download plasma-workspace-wallpapers mate-backgrounds ukui-wallpapers \\
        gnome-backgrounds lomiri-wallpapers lomiri-wallpapers-16.04 lomiri-wallpapers-20.04
    for d in *.deb; do dpkg-deb -x "$d" pkgs/; done
    pip install opencv-python-headless
    python bench/make_photo_sift.py pkgs/usr/share --out photo-sift-128-euclidean.hdf5

Every JPEG/PNG under the given folders is read once per distinct picture (a picture
shipped at several resolutions, or in two packages, is kept at its largest: pictures whose
16x16 grey thumbnails match are one picture). OpenCV's SIFT describes each picture at its
own resolution; descriptors are rounded to integers 0..255, as SIFT1M's (and the dev set's)
are. Every --holdout-th picture (by content order) gives the queries, the others the train
rows, so no query comes from a picture in the index. Ground truth: annlib's exact float32
search, the top 100 by Euclidean distance (ties: the smaller train index), written in the
ann-benchmarks HDF5 layout.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

EXTENSIONS = {".jpg", ".jpeg", ".png"}


def pictures(folders) -> list[Path]:
    """One file per distinct picture, the largest (most pixels) of those that look alike."""
    import cv2

    best: dict[bytes, tuple[int, Path]] = {}
    for folder in folders:
        for path in sorted(Path(folder).rglob("*")):
            if path.suffix.lower() not in EXTENSIONS or not path.is_file():
                continue
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is None or min(image.shape) < 256:
                continue  # unreadable, icons and thumbnails
            # Coarse enough that one picture at two resolutions (or recompressed) matches.
            thumb = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA) // 32
            key = hashlib.sha1(thumb.tobytes()).digest()
            pixels = image.shape[0] * image.shape[1]
            if key not in best or pixels > best[key][0]:
                best[key] = (pixels, path)
    return [path for _, path in sorted(best.values(), key=lambda pv: str(pv[1]))]


def describe(path: Path, contrast_threshold: float) -> np.ndarray:
    """OpenCV SIFT descriptors of one picture (grey), as integers 0..255 in float32."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    sift = cv2.SIFT_create(contrastThreshold=contrast_threshold)
    _, descriptors = sift.detectAndCompute(image, None)
    if descriptors is None:
        return np.zeros((0, 128), np.float32)
    return np.clip(np.rint(descriptors), 0, 255).astype(np.float32)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", help="folders searched for .jpg/.jpeg/.png pictures")
    parser.add_argument("--out", required=True, help="HDF5 file to write")
    parser.add_argument("--holdout", type=int, default=10, help="every N-th picture gives queries (default 10)")
    parser.add_argument("--queries", type=int, default=2000, help="queries sampled from the held-out pictures")
    parser.add_argument("--contrast-threshold", type=float, default=0.02,
                        help="SIFT's contrast threshold (OpenCV's default 0.04 finds fewer keypoints)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from annlib.datasets import ground_truth, write_hdf5

    start = time.perf_counter()
    files = pictures(args.folders)
    train_parts, test_parts = [], []
    for i, path in enumerate(files):
        d = describe(path, args.contrast_threshold)
        (test_parts if i % args.holdout == args.holdout - 1 else train_parts).append(d)
        print(f"[{time.perf_counter() - start:6.0f} s] {i + 1}/{len(files)} {path.name}: {len(d):,} descriptors",
              file=sys.stderr)
    train = np.concatenate(train_parts)
    held = np.concatenate(test_parts)
    rng = np.random.default_rng(args.seed)
    test = held[np.sort(rng.choice(len(held), min(args.queries, len(held)), replace=False))]
    print(f"{len(files)} pictures: {len(train):,} train descriptors, {len(test):,} queries "
          f"(of {len(held):,} from {len(test_parts)} held-out pictures)", file=sys.stderr)
    neighbors, distances = ground_truth(train, test, 100, "euclidean")
    write_hdf5(args.out, train, test, neighbors, distances, "euclidean")
    print(f"wrote {args.out} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
