"""Small Numba helpers shared by kernels: raw data pointers and the landscape function type."""

from __future__ import annotations

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

#: C signature of a compiled landscape evaluated on a block of ``n`` rows of dimension ``d``:
#: ``void block(double *x, double *grad, double *value, intp n, intp d, double *theta, intp ntheta)``
#: writes ``grad[i, :] = dU/dx (x[i, :])`` and ``value[i] = U(x[i, :])`` for ``i < n``; ``theta``
#: holds the landscape's parameters (``ntheta`` of them), so new parameters never recompile.
LANDSCAPE_BLOCK_SIG = types.void(
    types.CPointer(types.float64),
    types.CPointer(types.float64),
    types.CPointer(types.float64),
    types.intp,
    types.intp,
    types.CPointer(types.float64),
    types.intp,
)


class LazyCFunc:
    """A ``numba.cfunc`` compiled (or loaded from the disk cache) on first use, not at import.

    ``import stochdyn`` then costs nothing for the landscapes a program never uses.
    """

    def __init__(self, pyfunc, sig=LANDSCAPE_BLOCK_SIG, cache: bool = True):
        self.pyfunc = pyfunc
        self.sig = sig
        self.cache = cache
        self._compiled = None

    def get(self):
        if self._compiled is None:
            from numba import cfunc

            self._compiled = cfunc(self.sig, cache=self.cache)(self.pyfunc)
        return self._compiled


def lazy_cfunc(pyfunc):
    """Decorator: a :class:`LazyCFunc` with the landscape block signature, cached on disk."""
    return LazyCFunc(pyfunc)


@intrinsic
def row_ptr(typingctx, arr, row):
    """Pointer to the first element of ``arr[row]`` (``arr`` C-contiguous, no bounds check)."""
    if not isinstance(arr, types.Array):
        return None
    sig = types.CPointer(arr.dtype)(arr, types.intp)

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        strides = cgutils.unpack_tuple(builder, ary.strides)
        offset = builder.mul(args[1], strides[0])
        base = builder.ptrtoint(ary.data, cgutils.intp_t)
        return builder.inttoptr(builder.add(base, offset), ary.data.type)

    return sig, codegen


@njit(cache=True)
def eval_block(fn, theta, x, grad, value):
    """Evaluate a compiled landscape ``fn`` on every row of ``x`` (shape ``(n, d)``, C order)."""
    fn(row_ptr(x, 0), row_ptr(grad, 0), row_ptr(value, 0), x.shape[0], x.shape[1], row_ptr(theta, 0), theta.shape[0])


@intrinsic
def stack_scratch(typingctx, n):
    """A C-contiguous float64 array of ``n`` uninitialised doubles on the stack of the calling function.

    Used as the gradient row of value-only landscape blocks: a buffer that is written and never
    read lets LLVM delete the gradient computation (and the transcendental calls it needs) from
    the inlined row function, so one formula serves both block functions. Call it once per
    function (not in a loop): the stack grows with every call.
    """
    if not isinstance(n, types.Integer):
        return None
    arrty = types.Array(types.float64, 1, "C")
    sig = arrty(types.intp)

    def codegen(context, builder, signature, args):
        (count,) = args
        ptr = cgutils.alloca_once(builder, context.get_value_type(types.float64), size=count)
        ary = context.make_array(arrty)(context, builder)
        itemsize = context.get_constant(types.intp, 8)
        context.populate_array(ary, data=ptr, shape=cgutils.pack_array(builder, [count]),
                               strides=cgutils.pack_array(builder, [itemsize]), itemsize=itemsize, meminfo=None)
        return ary._getvalue()

    return sig, codegen
