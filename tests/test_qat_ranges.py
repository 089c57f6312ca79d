"""QAT's range trackers hold zero (FIXAR's quantizer needs 0 exactly
representable: ReLU's zeros and padding), shown on data of one sign, which
the benches' data (always straddling zero) never are."""
from __future__ import annotations

import numpy as np
import pytest

from fixar.config import load
from fixar.golden.qat import LayerQuantizers

CFG = load("default")
F = CFG.pe.act32.frac


@pytest.mark.parametrize("sign", [1, -1])
def test_a_range_of_one_sign_still_holds_zero(sign):
    rng = np.random.default_rng(11)
    lq = LayerQuantizers(CFG, 1)
    for _ in range(3):                                # several batches, none reaching zero
        lq.track(0, sign * rng.integers(1 << (F - 2), 3 << F, (5, 40)))
    assert (lq.lo[0] == 0) if sign > 0 else (lq.hi[0] == 0)
    lq.freeze()
    zeros = np.zeros((2, 3), dtype=np.int64)
    got = lq.fake_quantize(0, zeros)
    if sign > 0:       # ReLU outputs: zero survives the 16-bit grid exactly
        assert np.array_equal(got, zeros)
    else:
        # The paper's z = floor(-a_min / delta) is 2^16 for a range [a_min, 0]:
        # one code past the 16-bit grid, so zero clips to one step below it.
        # No layer input of DDPG is all negative (ReLU outputs, states of both signs).
        assert lq.zero[0] == 1 << 16 and np.all(got < 0) and np.all(-got <= (lq.delta[0] >> 16) + 1)


def test_a_tracker_that_drops_zero_is_caught(monkeypatch):
    """The same check with the tracker planted to keep only the data's own range."""
    def narrow(self, i, X):
        lo, hi = int(X.min()), int(X.max())
        if self.seen[i]:
            lo, hi = min(lo, self.lo[i]), max(hi, self.hi[i])
        self.lo[i], self.hi[i], self.seen[i] = lo, hi, True
    monkeypatch.setattr(LayerQuantizers, "track", narrow)
    with pytest.raises(AssertionError):
        test_a_range_of_one_sign_still_holds_zero(1)
