"""ADC fit against the analytic signal S = S0 exp(-b ADC)."""

from __future__ import annotations

import numpy as np
import pytest

from weeke_pipeline.ingest.adc import fit_adc, otsu_mask, shells


def _phantom() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = (24, 24, 6)
    xx, yy, _ = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    r = np.hypot(xx - 11.5, yy - 11.5)
    adc = np.where(r < 5, 3.0e-3, 1.1e-3)  # CSF core, tissue around (mm^2/s)
    inside = r < 10
    s0 = np.where(inside, 1000.0, 5.0)
    return adc, s0, inside


def test_recovers_analytic_adc_with_multiple_directions_and_shells() -> None:
    adc, s0, inside = _phantom()
    bvals = np.array([0, 5, 1000, 1000, 1000, 2000, 2000])
    dwi = s0[..., None] * np.exp(-bvals * adc[..., None])
    out = fit_adc(dwi, bvals)
    mask = otsu_mask(dwi[..., 0])
    assert mask.sum() == inside.sum()
    np.testing.assert_allclose(out[inside], adc[inside] * 1e6, rtol=2e-3)
    assert np.all(out[~inside] == 0)
    assert out.dtype == np.float32


def test_trace_averages_anisotropic_directions() -> None:
    # three orthogonal directions with eigenvalues 1.7, 0.6, 0.4 (x10^-3): trace ADC = 0.9e-3
    b = np.array([0, 1000, 1000, 1000])
    lam = np.array([1.7e-3, 0.6e-3, 0.4e-3])
    signal = np.concatenate([[1000.0], 1000.0 * np.exp(-1000 * lam)])
    dwi = np.broadcast_to(signal, (3, 3, 3, 4)).copy()
    out = fit_adc(dwi, b, mask=np.ones((3, 3, 3), bool))
    np.testing.assert_allclose(out, 900.0, rtol=1e-6)


def test_needs_b0_and_b_shell() -> None:
    dwi = np.ones((2, 2, 2, 2))
    with pytest.raises(ValueError, match="b=0 shell"):
        fit_adc(dwi, np.array([1000, 1000]))
    assert [list(g) for g in shells(np.array([1000, 0, 1010, 3]))] == [[1, 3], [0, 2]]
