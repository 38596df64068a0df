"""Small builders shared by the cost-model tests (layers by hand, hardware points)."""

from __future__ import annotations

from dse.network import Layer

__all__ = ["conv", "fc"]


def conv(name="c", c_in=8, h=8, w=8, c_out=8, k=3, s=1, p=1, g=1, d=1, kw=None):
    """A conv Layer with its output shape worked out by the usual formula."""
    kw = k if kw is None else kw
    pw = p
    ho = (h + 2 * p - d * (k - 1) - 1) // s + 1
    wo = (w + 2 * pw - d * (kw - 1) - 1) // s + 1
    return Layer(name=name, op="conv", inputs=("x",), in_shape=(c_in, h, w),
                 out_shape=(c_out, ho, wo), kernel=(k, kw), stride=(s, s),
                 padding=(p, pw, p, pw), dilation=(d, d), groups=g)


def fc(name="f", c=16, h=2, w=2, out=10):
    """A fully connected Layer on a C×H×W input."""
    return Layer(name=name, op="fc", inputs=("x",), in_shape=(c, h, w), out_shape=(out, 1, 1))
