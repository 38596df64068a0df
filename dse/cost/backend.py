"""Array namespaces for the cost model: numpy by default, torch (CPU or CUDA) when installed.

Every cost formula is written against a small namespace ``xp`` with only the operations that
numpy and torch share: arithmetic, ``//`` (ceil-division is written ``-(-a // b)``),
comparisons, ``xp.where``, ``xp.maximum``, ``xp.minimum``, ``xp.sqrt`` and ``xp.asarray``.
For numpy the namespace is the ``numpy`` module itself.  torch's own functions differ in
small ways (``torch.maximum`` refuses Python scalars, ``torch.asarray`` keeps integer
dtypes), so :class:`TorchNamespace` wraps them: every scalar becomes a float64 tensor on the
chosen device and every array is converted to float64, so cycles stay exact integers up to
2**53 and autograd sees one dtype throughout.

torch is optional: nothing here imports it until :func:`get_namespace` is asked for it, and
the tests skip the torch backend when it is absent.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TorchNamespace", "get_namespace", "torch_available", "to_numpy", "take_last"]


def torch_available() -> bool:
    """Return whether torch can be imported (without importing it twice)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class TorchNamespace:
    """The subset of the numpy API the cost model uses, on torch float64 tensors.

    Parameters
    ----------
    device:
        torch device string (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    """

    def __init__(self, device: str = "cpu"):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        self.float64 = torch.float64
        self.inf = float("inf")

    def __repr__(self) -> str:
        return f"TorchNamespace(device={str(self.device)!r})"

    def asarray(self, x, dtype=None):
        """Return ``x`` as a float64 tensor on the device (tensors keep their autograd graph)."""
        torch = self.torch
        if isinstance(x, torch.Tensor):
            if x.dtype == torch.bool and dtype is None:
                return x.to(self.device)
            return x.to(device=self.device, dtype=torch.float64)
        x = np.asarray(x)
        if x.dtype == np.bool_ and dtype is None:
            return torch.as_tensor(x, device=self.device)
        return torch.as_tensor(x, dtype=torch.float64, device=self.device)

    def _t(self, x):
        torch = self.torch
        if isinstance(x, torch.Tensor):
            return x
        return torch.as_tensor(x, dtype=torch.float64, device=self.device)

    def where(self, cond, a, b):
        """Elementwise ``a`` where ``cond`` else ``b`` (scalars allowed for ``a`` and ``b``)."""
        return self.torch.where(self._cond(cond), self._t(a), self._t(b))

    def _cond(self, cond):
        torch = self.torch
        if isinstance(cond, torch.Tensor):
            return cond if cond.dtype == torch.bool else cond != 0
        return torch.as_tensor(np.asarray(cond, dtype=bool), device=self.device)

    def maximum(self, a, b):
        """Elementwise maximum (scalars allowed)."""
        return self.torch.maximum(self._t(a), self._t(b))

    def minimum(self, a, b):
        """Elementwise minimum (scalars allowed)."""
        return self.torch.minimum(self._t(a), self._t(b))

    def sqrt(self, a):
        """Elementwise square root."""
        return self.torch.sqrt(self._t(a))

    def logical_and(self, a, b):
        """Elementwise logical and."""
        return self.torch.logical_and(self._cond(a), self._cond(b))

    def logical_or(self, a, b):
        """Elementwise logical or."""
        return self.torch.logical_or(self._cond(a), self._cond(b))

    def logical_not(self, a):
        """Elementwise logical not."""
        return self.torch.logical_not(self._cond(a))

    def take_last(self, a, index):
        """``a[..., index]`` for an integer numpy ``index`` (a gather on the last axis)."""
        idx = self.torch.as_tensor(np.asarray(index, dtype=np.int64), device=self.device)
        return a.index_select(a.dim() - 1, idx)


def get_namespace(name: str = "numpy", device: str = "cpu"):
    """Return the array namespace called ``name``: ``"numpy"`` or ``"torch"``.

    Raises
    ------
    ValueError
        For an unknown name.
    ImportError
        When ``"torch"`` is asked for and torch is not installed.
    """
    if name == "numpy":
        return np
    if name == "torch":
        return TorchNamespace(device)
    raise ValueError(f"backend must be 'numpy' or 'torch', not {name!r}")


def take_last(xp, a, index):
    """Gather ``a[..., index]`` on the last axis in namespace ``xp``."""
    if xp is np:
        return a[..., index]
    return xp.take_last(a, index)


def to_numpy(x) -> np.ndarray:
    """Return ``x`` (numpy array, torch tensor or scalar) as a numpy array (detached, on CPU)."""
    if hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return np.asarray(x)
