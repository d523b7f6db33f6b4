"""Notebooks: a progress bar by default for long runs in a Jupyter kernel (a widget with ipywidgets,
a text bar without it, never tqdm's "IProgress not found" warning), and HTML tables for
integrators, landscapes and problems."""

import importlib.util
import sys
import types
import warnings

import numpy as np
import pytest

import stochdyn as sd
from stochdyn.ensemble import progress

RUN = dict(n_replicas=50, n_steps=400, record_every=100, rng=0, chunk_steps=100)


def _fake_ipython(monkeypatch, kernel):
    shell = types.SimpleNamespace(kernel=object() if kernel else None)
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


@pytest.fixture
def long_runs(monkeypatch):
    monkeypatch.setattr(progress, "AUTO_PROGRESS_WORK", 1.0)  # every run counts as long


def test_notebook_detection(monkeypatch):
    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert not progress.in_notebook()
    _fake_ipython(monkeypatch, kernel=False)  # a terminal IPython: no kernel
    assert not progress.in_notebook()
    _fake_ipython(monkeypatch, kernel=True)
    assert progress.in_notebook()


def test_text_bar_in_a_notebook_without_ipywidgets(monkeypatch, long_runs, capsys):
    _fake_ipython(monkeypatch, kernel=True)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ipywidgets" else real(name, *a))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm's IProgress warning would fail here
        sd.simulate(sd.EulerMaruyama(dt=1e-3), sd.landscapes.DoubleWell(dim=2), progress=None, **RUN)
    err = capsys.readouterr().err
    assert "EulerMaruyama on DoubleWell" in err and "400" in err  # stderr is no terminal: shown for the kernel
    _fake_ipython(monkeypatch, kernel=False)  # the same long run outside a notebook and a terminal: silent
    sd.simulate(sd.EulerMaruyama(dt=1e-3), sd.landscapes.DoubleWell(dim=2), progress=None, **RUN)
    assert capsys.readouterr().err == ""


def test_widget_bar_in_a_notebook_with_ipywidgets(monkeypatch, long_runs):
    pytest.importorskip("ipywidgets", reason="the 'notebook' extra installs ipywidgets")
    from tqdm.notebook import tqdm as notebook_tqdm

    _fake_ipython(monkeypatch, kernel=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bar = progress.progress_bar(None, 10, 2.0, "run")
    assert isinstance(bar, notebook_tqdm)
    bar.close()


def _cells(html):
    import re

    return dict(re.findall(r"<th[^>]*>(.*?)</th><td[^>]*><code>(.*?)</code></td>", html))


def test_html_tables_of_integrators_landscapes_and_problems():
    em = sd.EulerMaruyama(dt=1e-3, temperature=0.25)
    html = em._repr_html_()
    assert "<b>EulerMaruyama</b>" in html and "(langevin)" in html and "overdamped Langevin" in html
    assert _cells(html) == {"dt": "0.001", "temperature": "0.25"}

    sgd = sd.SGD(lr=0.1, batch_size=4, sampling={"mode": "epoch"})
    cells = _cells(sgd._repr_html_())
    assert cells["lr"] == "0.1" and cells["batch_size"] == "4" and "&quot;epoch&quot;" in cells["sampling"]

    mix = sd.landscapes.GaussianMixture(means=np.arange(40.0).reshape(20, 2), weights=np.full(20, 0.05))
    html = mix._repr_html_()
    assert "<b>GaussianMixture</b>" in html and ":math:" not in html
    assert _cells(html)["means"].endswith("(shape (20, 2))") and "..." in _cells(html)["means"]  # shortened

    prob = sd.problems.LeastSquares.from_data(sd.problems.gaussian_regression(100, 3, noise=0.5, seed=0))
    cells = _cells(prob._repr_html_())
    assert cells["dim"] == "3" and cells["n"] == "100" and "gaussian_regression" in cells["data"]
    assert repr(em) == "EulerMaruyama(dt=0.001, temperature=0.25, diffusion=None)"  # text repr unchanged
