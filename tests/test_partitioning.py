"""k-means partitioning: converges on clustered data, no empty leaves, spherical option."""
import numpy as np
import pytest

from annlib.quantized.training import assign, kmeans
from conftest import clustered


def test_assign_matches_numpy(rng):
    x = rng.standard_normal((3000, 20)).astype(np.float32)
    c = rng.standard_normal((50, 20)).astype(np.float32)
    labels, dist = assign(x, c)
    d2 = ((x[:, None, :].astype(np.float64) - c[None]) ** 2).sum(-1)
    assert (labels == d2.argmin(1)).mean() > 0.999
    assert np.allclose(dist, d2.min(1), rtol=1e-3, atol=1e-3)


def separated_clusters(rng, k=16, d=12, n=8000, noise=0.1):
    centers = rng.standard_normal((k, d)).astype(np.float32) * 5
    labels = rng.integers(0, k, n)
    return centers, (centers[labels] + noise * rng.standard_normal((n, d))).astype(np.float32)


def test_kmeanspp_finds_separated_clusters(rng):
    centers, x = separated_clusters(rng)
    got = kmeans(x, 16, iterations=15, init="kmeans++", seed=3, progress=False)
    nearest = ((centers[:, None] - got[None]) ** 2).sum(-1).min(1)
    assert (nearest < 0.05).mean() >= 0.9
    _, cost = assign(x, got)
    assert np.median(cost) < 3 * 0.1**2 * 12


def test_lloyd_iterations_reduce_cost(rng):
    _, x = separated_clusters(rng)
    one = kmeans(x, 16, iterations=1, seed=1, progress=False)
    many = kmeans(x, 16, iterations=12, seed=1, progress=False)
    assert assign(x, many)[1].mean() < assign(x, one)[1].mean()


def test_no_empty_leaves_even_with_duplicates(rng):
    x = np.repeat(rng.standard_normal((40, 8)).astype(np.float32), 50, axis=0)
    got = kmeans(x, 40, iterations=10, seed=0, progress=False)
    labels, _ = assign(x, got)
    assert len(np.unique(labels)) == 40


def test_spherical_centers_are_unit_norm(rng):
    x, _ = clustered(rng, 4000, 16, nq=1)
    got = kmeans(x, 20, spherical=True, progress=False)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_kmeans_is_deterministic_and_validates(rng):
    x = rng.standard_normal((2000, 6)).astype(np.float32)
    a = kmeans(x, 10, seed=7, progress=False, training_sample_size=500)
    b = kmeans(x, 10, seed=7, progress=False, training_sample_size=500)
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="num_leaves"):
        kmeans(x, 0)
    with pytest.raises(ValueError, match="num_leaves"):
        kmeans(x, 2001)
    with pytest.raises(ValueError, match="init"):
        kmeans(x, 3, init="bogus")
