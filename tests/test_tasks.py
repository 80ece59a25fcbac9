"""Tasks: shapes, splits, targets computed independently, scaling, baselines, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from bptt import BPTTError
from bptt import tasks as T


def _pairs(split: T.Split) -> set[tuple[int, int]]:
    x = split.x.astype(int)  # (T, N, 2)
    w = 1 << np.arange(x.shape[0])[:, None]
    return set(zip((x[..., 0] * w).sum(0).tolist(), (x[..., 1] * w).sum(0).tolist()))


def test_binary_addition_shapes_bits_and_disjoint_splits():
    d = T.binary_addition(bits=8, n_train=300, n_val=50, n_test=70, seed=3)
    assert (d.train.x.shape, d.train.y.shape) == ((9, 300, 2), (9, 300, 1))
    assert d.val.x.shape == (9, 50, 2) and d.test.x.shape == (9, 70, 2)
    assert d.train.mask is None and (d.input_size, d.output_size) == (2, 1)
    tr, va, te = _pairs(d.train), _pairs(d.val), _pairs(d.test)
    assert len(tr) == 300 and len(va) == 50 and len(te) == 70
    assert not (tr & va) and not (tr & te) and not (va & te)
    # targets: the binary digits of a + b, least significant first, from Python's own formatting
    x = d.test.x.astype(int)
    for n in range(70):
        a = int("".join(str(v) for v in x[::-1, n, 0]), 2)
        b = int("".join(str(v) for v in x[::-1, n, 1]), 2)
        assert a < 256 and b < 256
        want = format(a + b, "09b")[::-1]
        assert "".join(str(int(v)) for v in d.test.y[:, n, 0]) == want


def test_binary_addition_seeded():
    a = T.binary_addition(bits=4, n_train=20, n_val=5, n_test=5, seed=1)
    b = T.binary_addition(bits=4, n_train=20, n_val=5, n_test=5, seed=1)
    c = T.binary_addition(bits=4, n_train=20, n_val=5, n_test=5, seed=2)
    assert np.array_equal(a.train.x, b.train.x) and not np.array_equal(a.train.x, c.train.x)


def test_binary_addition_too_many_pairs():
    with pytest.raises(BPTTError, match="only 16 distinct pairs"):
        T.binary_addition(bits=2, n_train=10, n_val=5, n_test=5)


def test_bits_to_int():
    assert T.bits_to_int(np.array([[1, 0], [0, 1], [1, 1]])).tolist() == [5, 6]


def test_sine_shapes_shift_and_scale():
    d = T.sine(length=30, n_train=8, n_val=3, n_test=4, noise=0.1, seed=0)
    assert d.train.x.shape == (30, 8, 1) and d.val.y.shape == (30, 3, 1) and d.test.x.shape == (30, 4, 1)
    for s in (d.train, d.val, d.test):
        assert np.array_equal(s.x[1:], s.y[:-1])  # y_t = x_{t+1}: next-value prediction
    u = d.scaling.from_unit(d.train.x)
    assert np.allclose(d.scaling.to_unit(u), d.train.x)
    assert np.all(np.abs(u) < 1 + 6 * 0.1)  # a unit sine plus noise
    assert np.all((d.train.x > 0) & (d.train.x < 1))
    with pytest.raises(BPTTError, match="noise"):
        T.sine(noise=-1)


def test_adding_markers_targets_mask():
    d = T.adding(length=12, n_train=40, n_val=10, n_test=10, seed=5)
    for s in (d.train, d.val, d.test):
        T_, N, D = s.x.shape
        assert (T_, D) == (12, 2) and s.y.shape == (12, N, 1) and s.mask.shape == (12, N)
        m = s.x[..., 1]
        assert np.all(m.sum(0) == 2)
        assert np.all(m[:6].sum(0) == 1) and np.all(m[6:].sum(0) == 1)  # one marker per half
        want = 0.5 * (s.x[..., 0] * m).sum(0)
        assert np.allclose(s.y[-1, :, 0], want)
        assert s.mask[-1].all() and not s.mask[:-1].any()


def test_sunspots_data_and_splits():
    years, v = T.sunspots_series()
    assert len(v) == 309 and years[0] == 1700 and years[-1] == 2008
    assert v[0] == 5 and v[-1] == 2.9 and v[years.tolist().index(1957)] == 190.2
    d = T.sunspots(window=20, n_val=20, n_test=30)
    assert d.info["years"] == {"train": [1700, 1958], "val": [1959, 1978], "test": [1979, 2008]}
    assert d.test.x.shape == (20, 30, 1) and d.val.x.shape == (20, 20, 1)
    assert d.train.x.shape == (20, 259 - 20, 1)
    assert (d.scaling.lo, d.scaling.hi) == (0.0, 190.2)  # min and max of 1700-1958
    # test window n predicts year 1979 + n from the 20 years before it, scored at its last step
    for n in (0, 29):
        j = 309 - 30 + n
        assert np.allclose(d.scaling.from_unit(d.test.x[:, n, 0]), v[j - 20 : j])
        assert np.isclose(d.scaling.from_unit(d.test.y[-1, n, 0]), v[j])
    assert d.test.mask[-1].all() and not d.test.mask[:-1].any()
    # every training target lies in the training years
    assert np.isclose(d.scaling.from_unit(d.train.y[-1, -1, 0]), v[258])


def _write_csv(path, rows):
    path.write_text("\n".join(rows) + "\n")
    return path


def test_csv_task_reads_scales_and_splits(tmp_path):
    vals = [10 + 3 * np.sin(0.4 * i) + 0.1 * i for i in range(60)]
    f = _write_csv(tmp_path / "d.csv", ["when,level"] + [f"{i},{float(v)!r}" for i, v in enumerate(vals)])
    d = T.csv_task(f, "level", window=5, n_val=10, n_test=10)
    assert d.train.x.shape == (5, 40 - 5, 1) and d.test.x.shape == (5, 10, 1)
    train_part = np.array(vals[:40])
    assert (d.scaling.lo, d.scaling.hi) == (train_part.min(), train_part.max())
    assert d.train.x.min() == 0.0 and d.train.y.max() <= 1.0
    assert np.allclose(d.scaling.from_unit(d.test.y[-1, :, 0]), vals[50:])


@pytest.mark.parametrize(
    "rows, column, match",
    [
        (["a,b", "1,2", "3,4"], "c", "no column 'c'; the header has 'a', 'b'"),
        (["a,b", "1,2", "3,x", "5,6"], "b", "line 3, column 'b' holds 'x'"),
        (["a,b", "1,2", "3,", "5,6"], "b", "line 3, column 'b' holds ''"),
        (["a", "1", "nan"], "a", "line 3"),
    ],
)
def test_csv_bad_input(tmp_path, rows, column, match):
    f = _write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(BPTTError, match=match):
        T.csv_task(f, column)


def test_csv_missing_file_and_empty(tmp_path):
    with pytest.raises(BPTTError, match="no such file"):
        T.csv_task(tmp_path / "nope.csv", "a")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(BPTTError, match="empty"):
        T.csv_task(tmp_path / "e.csv", "a")


def test_series_too_short_for_window():
    with pytest.raises(BPTTError, match="has 30 values but a window of 20 .* needs at least 31"):
        T.series_task(np.arange(30.0), "csv", window=20, n_val=5, n_test=5)
    T.series_task(np.arange(31.0), "csv", window=20, n_val=5, n_test=5)  # exactly enough


def test_constant_series_refused():
    with pytest.raises(BPTTError, match="constant"):
        T.series_task(np.ones(50), "csv", window=5)


def test_unknown_task():
    with pytest.raises(BPTTError, match="unknown task 'nope'; choose one of binary-addition"):
        T.load("nope")


def test_ar_fit_recovers_known_process():
    # s_t = 0.5 + 0.6 s_{t-1} - 0.3 s_{t-2} + small noise: least squares finds the coefficients
    rng = np.random.default_rng(0)
    s = np.zeros(3000)
    for t in range(2, 3000):
        s[t] = 0.5 + 0.6 * s[t - 1] - 0.3 * s[t - 2] + 0.01 * rng.standard_normal()
    coef = T.ar_fit(s, 2, 3000)
    assert np.allclose(coef, [0.5, 0.6, -0.3], atol=0.01)


def test_series_metrics_baselines_by_hand():
    s = np.array([1.0, 3, 2, 5, 4, 6, 5, 8, 7, 9, 8, 10])
    d = T.series_task(s, "csv", window=2, n_val=2, n_test=3)

    class Echo:  # predicts each window's last input: the persistence forecast
        dtype = np.dtype(np.float64)

        def predict(self, x):
            return x

    m = T.metrics(d, Echo())
    truth = s[-3:]
    assert m["persistence_mse"] == pytest.approx(np.mean((s[-4:-1] - truth) ** 2))
    assert m["test_mse"] == pytest.approx(m["persistence_mse"])
    assert m["ar_order"] == 2 and np.isfinite(m["ar2_mse"])  # p = min(9, window)
