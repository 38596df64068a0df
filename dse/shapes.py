"""Shape inference of the network IR's operations.

Pure functions of integers and ``(C, H, W)`` tuples, independent of any importer.  A bad
combination raises :class:`ShapeError`, a ``ValueError`` that carries the offending parameter's
name so that a caller can turn it into an :class:`~dse.errors.InputError` naming the file and
the field (``layers[3].kernel``).

Conventions (those of PyTorch and ONNX, which the importers and the built-in networks follow):

- a spatial output size is ``(H + pad_top + pad_bottom - dilation·(k−1) − 1) // stride + 1``;
- pools with ``ceil_mode`` round that division up, but a window may not *start* in the bottom or
  right padding (PyTorch's and Caffe's rule), so the last window always covers a real pixel;
- padding is ``(top, left, bottom, right)``, the order of ONNX ``pads`` for 2-D maps.
"""

from __future__ import annotations

__all__ = ["ShapeError", "pair", "padding4", "conv_out_size", "pool_out_size", "infer_shape",
           "PARAM_OPS", "ARITY"]


class ShapeError(ValueError):
    """An operation's parameters do not fit its inputs.

    Parameters
    ----------
    field:
        The parameter at fault (``kernel``, ``inputs``, ...), or ``""``.
    message:
        What was expected, phrased "must be ..., not ...".
    """

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}" if field else message)


#: Operations and the parameters each accepts (besides ``name``, ``op`` and ``inputs``).
PARAM_OPS: dict[str, tuple[str, ...]] = {
    "input": (),
    "conv": ("out_channels", "kernel", "stride", "padding", "dilation", "groups"),
    "fc": ("out_features",),
    "maxpool": ("kernel", "stride", "padding", "dilation", "ceil_mode"),
    "avgpool": ("kernel", "stride", "padding", "ceil_mode"),
    "gap": (),
    "add": (),
    "concat": (),
    "relu": (),
    "relu6": (),
    "sigmoid": (),
    "flatten": (),
    "identity": (),
}

#: Number of inputs per operation: ``(least, most)``; ``None`` means no upper bound.
ARITY: dict[str, tuple[int, int | None]] = {
    op: ((0, 0) if op == "input" else (2, None) if op in ("add", "concat") else (1, 1))
    for op in PARAM_OPS
}


def _positive_int(field: str, value, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ShapeError(field, f"must be an integer, not {value!r}")
    if value < low:
        word = "positive" if low == 1 else f"at least {low}"
        raise ShapeError(field, f"must be {word}, not {value}")
    return value


def pair(field: str, value, low: int = 1) -> tuple[int, int]:
    """Return *value* (an int, or a list/tuple of two ints) as an ``(h, w)`` pair.

    Raises :class:`ShapeError` if it is neither, or if an element is below *low*.
    """
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ShapeError(field, f"must be an integer or a list [h, w], not {list(value)!r}")
        return (_positive_int(field, value[0], low), _positive_int(field, value[1], low))
    v = _positive_int(field, value, low)
    return (v, v)


def padding4(field: str, value) -> tuple[int, int, int, int]:
    """Return padding given as ``p``, ``[h, w]`` or ``[top, left, bottom, right]`` as 4 ints."""
    if isinstance(value, (list, tuple)):
        if len(value) == 2:
            h, w = pair(field, value, low=0)
            return (h, w, h, w)
        if len(value) == 4:
            return tuple(_positive_int(field, v, 0) for v in value)  # type: ignore[return-value]
        raise ShapeError(field, "must be an integer, [h, w] or [top, left, bottom, right], "
                                f"not {list(value)!r}")
    v = _positive_int(field, value, 0)
    return (v, v, v, v)


def conv_out_size(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int,
                  dilation: int = 1, *, field: str = "kernel") -> int:
    """Return a convolution's output size along one axis (floor rounding).

    Raises :class:`ShapeError` if the dilated kernel is larger than the padded input.
    """
    span = dilation * (kernel - 1) + 1
    padded = size + pad_lo + pad_hi
    if span > padded:
        raise ShapeError(field, f"must fit the padded input ({padded}), not span {span}")
    return (padded - span) // stride + 1


def pool_out_size(size: int, kernel: int, stride: int, pad_lo: int, pad_hi: int,
                  dilation: int = 1, ceil_mode: bool = False, *, field: str = "kernel") -> int:
    """Return a pool's output size along one axis, with PyTorch's ``ceil_mode`` rule."""
    span = dilation * (kernel - 1) + 1
    padded = size + pad_lo + pad_hi
    if span > padded:
        raise ShapeError(field, f"must fit the padded input ({padded}), not span {span}")
    if not ceil_mode:
        return (padded - span) // stride + 1
    out = -(-(padded - span) // stride) + 1
    # The last window must start inside the input or the top/left padding.
    if (out - 1) * stride >= size + pad_lo:
        out -= 1
    return out


def _same_shapes(op: str, in_shapes) -> None:
    first = in_shapes[0]
    for i, shape in enumerate(in_shapes[1:], 1):
        if shape != first:
            raise ShapeError("inputs", f"of {op} must all have the same shape; input 0 is "
                                       f"{list(first)}, input {i} is {list(shape)}")


def infer_shape(op: str, in_shapes: list[tuple[int, int, int]], params: dict
                ) -> tuple[int, int, int]:
    """Return the output shape ``(C, H, W)`` of *op* applied to inputs of *in_shapes*.

    Parameters
    ----------
    op:
        An operation of :data:`PARAM_OPS` other than ``input``.
    in_shapes:
        Shapes of the inputs, in order.
    params:
        Normalised parameters: ``kernel``, ``stride``, ``dilation`` as ``(h, w)``; ``padding`` as
        ``(top, left, bottom, right)``; ints for ``out_channels``, ``groups``, ``out_features``;
        ``ceil_mode`` a bool.

    Raises
    ------
    ShapeError
        The parameters do not fit the inputs (field names the parameter at fault).
    """
    least, most = ARITY[op]
    if len(in_shapes) < least or (most is not None and len(in_shapes) > most):
        want = f"exactly {least}" if least == most else f"at least {least}"
        raise ShapeError("inputs", f"must name {want} input layer(s) for {op}, "
                                   f"not {len(in_shapes)}")
    if op in ("add",):
        _same_shapes(op, in_shapes)
        return in_shapes[0]
    if op == "concat":
        h_w = in_shapes[0][1:]
        for i, shape in enumerate(in_shapes[1:], 1):
            if shape[1:] != h_w:
                raise ShapeError("inputs", f"of concat must have equal H and W; input 0 is "
                                           f"{list(in_shapes[0])}, input {i} is {list(shape)}")
        return (sum(s[0] for s in in_shapes), h_w[0], h_w[1])
    c, h, w = in_shapes[0]
    if op in ("relu", "relu6", "sigmoid", "identity"):
        return (c, h, w)
    if op == "flatten":
        return (c * h * w, 1, 1)
    if op == "gap":
        return (c, 1, 1)
    if op == "fc":
        return (params["out_features"], 1, 1)
    kh, kw = params["kernel"]
    sh, sw = params["stride"]
    pt, pl, pb, pr = params["padding"]
    dh, dw = params.get("dilation", (1, 1))
    if op == "conv":
        groups = params["groups"]
        out_c = params["out_channels"]
        if c % groups:
            raise ShapeError("groups", f"must divide the input channels ({c}), not {groups}")
        if out_c % groups:
            raise ShapeError("groups", f"must divide out_channels ({out_c}), not {groups}")
        return (out_c, conv_out_size(h, kh, sh, pt, pb, dh), conv_out_size(w, kw, sw, pl, pr, dw))
    if op in ("maxpool", "avgpool"):
        ceil = params.get("ceil_mode", False)
        return (c, pool_out_size(h, kh, sh, pt, pb, dh, ceil),
                pool_out_size(w, kw, sw, pl, pr, dw, ceil))
    raise ShapeError("op", f"must be one of {', '.join(PARAM_OPS)}, not {op!r}")
