"""Array backends for the hot loops: numpy on CPU, torch on a GPU (or CPU when asked).

The ridge code is written once against :class:`Ops`; only the handful of calls whose names differ
between numpy and torch live here."""

from __future__ import annotations

import functools
import glob
import sys
from typing import Any

import numpy as np
import scipy.linalg

BACKENDS = ("auto", "numpy", "torch")
DTYPES = ("float64", "float32")
# Device files of a GPU that torch.cuda can drive: NVIDIA's driver, WSL2's GPU, AMD's ROCm (torch.cuda on HIP).
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/nvidia[0-9]*", "/dev/dxg", "/dev/kfd")


class Ops:
    """numpy implementation; :class:`TorchOps` overrides what differs."""

    name = "numpy"
    device = "cpu"

    def __init__(self, dtype: str = "float64") -> None:
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; known: {list(DTYPES)}")
        self.dtype_name = dtype
        self.dtype: Any = np.dtype(dtype)

    def asarray(self, x: Any) -> Any:
        return np.ascontiguousarray(x, dtype=self.dtype)

    def index(self, idx: np.ndarray) -> Any:
        return np.asarray(idx)

    def to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x)

    @property
    def shares_triangles(self) -> bool:
        """Whether one p x p array can hold two symmetric matrices, one per triangle: every update and
        factorisation here reads and writes only the triangle it is told, and the float64 :meth:`eigh`
        (?syevr) returns its eigenvectors in a new array (float32's ?syevd writes them over all of ``a``)."""
        return self.dtype == np.float64

    def eigh(self, a: Any, lower: bool = True) -> tuple[Any, Any]:
        """Divide and conquer (LAPACK ?syevd) through scipy: half numpy's time in float32 with the
        same BLAS; ``a`` is a temporary of the caller's, overwritten (its ``lower`` or upper triangle
        only, in float64). float64: MRRR (?syevr), as fast there and with no matrix of workspace where
        ?syevd takes two (measured, 460-3600 rows, 1 thread; in float32 ?syevr is 1.4-3x slower)."""
        if self.dtype == np.float64:
            return scipy.linalg.eigh(a, lower=lower, driver="evr", check_finite=False, overwrite_a=True)
        # ?syevd called directly, with its workspace sizes cached per order: what scipy.linalg.eigh computes
        # (the same call, bit for bit) less its checks and workspace query (0.1-0.3 ms of a 6 ms call at 360)
        lwork, liwork = _syevd_workspace(self.dtype.char, len(a), lower)
        w, v, info = _syevd(self.dtype.char)(a, compute_v=1, lower=int(lower), lwork=lwork, liwork=liwork,
                                             overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"?syevd failed (info={info})")
        return w, v

    def solve_spd(self, a: Any, b: Any) -> Any:
        """``a^-1 b`` for symmetric positive definite ``a``, given by its upper triangle, which its
        Cholesky factor overwrites (the lower one is not touched). Raises ``numpy.linalg.LinAlgError``
        when ``a`` is not positive definite."""
        # through the transpose (Fortran order: factorised in place, no copy), whose lower triangle is a's
        # upper (LAPACK's lower Cholesky: 20% faster than the upper at 576 rows, 1 thread)
        factor = scipy.linalg.cho_factor(a.T, lower=True, overwrite_a=True, check_finite=False)
        return scipy.linalg.cho_solve(factor, b, check_finite=False)

    def add_gram(self, acc: Any, a: Any, alpha: float = 1.0, lower: bool = False) -> None:
        """``acc += alpha * a.T @ a`` in place, with no temporary of ``acc``'s size (BLAS ?syrk). Only
        the upper (or ``lower``) triangle of ``acc`` is written: all that :meth:`solve_spd` and
        :meth:`eigh` (given the transpose) read."""
        if len(a):
            syrk = scipy.linalg.blas.get_blas_funcs("syrk", (acc,))
            # acc.T is acc in Fortran order (its lower triangle is acc's upper one), written in place;
            # a.T, Fortran-ordered too, is not copied
            syrk(alpha, a.T, beta=1.0, c=acc.T, trans=0, lower=int(not lower), overwrite_c=1)

    def add_row_gram(self, acc: Any, a: Any) -> None:
        """``acc += a @ a.T`` in place for a C-ordered ``a`` (BLAS ?syrk on its Fortran-ordered transpose: no
        copy, no temporary of ``acc``'s size); numpy writes only the upper triangle (see :attr:`one_triangle`)."""
        syrk = scipy.linalg.blas.get_blas_funcs("syrk", (acc,))
        syrk(1.0, a.T, beta=1.0, c=acc.T, trans=1, lower=1, overwrite_c=1)

    one_triangle = True  # add_gram / add_row_gram / add_outer write one triangle only (torch: whole matrices)

    def add_outer(self, acc: Any, v: Any, alpha: float, lower: bool = False) -> None:
        """``acc += alpha * outer(v, v)`` in place, one triangle (BLAS ?syr, as :meth:`add_gram`)."""
        syr = scipy.linalg.blas.get_blas_funcs("syr", (acc,))
        syr(alpha, v, lower=int(not lower), a=acc.T, overwrite_a=1)

    def take(self, x: Any, idx: Any, axis: int) -> Any:
        return np.take(x, idx, axis=axis)

    def add_diagonal(self, a: Any, value: float) -> Any:
        """A copy of the square ``a`` with ``value`` added to its diagonal."""
        out = np.array(a, dtype=self.dtype)
        out.flat[:: len(out) + 1] += value
        return out

    def clamp_min(self, x: Any, value: float) -> Any:
        return np.maximum(x, value)

    def zeros(self, shape: tuple[int, ...]) -> Any:
        return np.zeros(shape, dtype=self.dtype)

    def empty(self, shape: tuple[int, ...]) -> Any:
        return np.empty(shape, dtype=self.dtype)

    def put(self, out: Any, rows: slice, values: np.ndarray) -> None:
        """``out[rows] = values`` in ``out``'s precision (numpy converts during the copy: no converted copy)."""
        out[rows] = values

    def sqnorm_cols(self, p: Any) -> Any:
        """Sum of squares over axis 0 without a temporary of ``p``'s size."""
        return np.einsum("ij,ij->j", p, p)

    def sqnorm_blocks(self, p: Any) -> Any:
        """Sum of squares over axis 1 of a 3-d array, without a temporary of ``p``'s size."""
        return np.einsum("aij,aij->aj", p, p)

    def dot_cols(self, a: Any, b: Any) -> Any:
        """``(a * b).sum(0)`` without the temporary."""
        return np.einsum("ij,ij->j", a, b)

    def take_rows(self, table: Any, rows: Any) -> Any:
        """``out[j] = table[rows[j], j]``."""
        return np.take_along_axis(table, rows[None, :], axis=0)[0]

    def sync(self) -> None:
        """Wait for queued device work (timing); nothing to wait for in numpy."""


@functools.lru_cache(maxsize=4)
def _syevd(char: str) -> Any:
    return scipy.linalg.lapack.get_lapack_funcs("syevd", dtype=np.dtype(char))


@functools.lru_cache(maxsize=64)
def _syevd_workspace(char: str, n: int, lower: bool) -> tuple[int, int]:
    """``?syevd``'s work array sizes for eigenvectors of order ``n`` (the query scipy.linalg.eigh makes per call)."""
    lwork = scipy.linalg.lapack.get_lapack_funcs("syevd_lwork", dtype=np.dtype(char))
    size, isize, info = lwork(n, compute_v=1, lower=int(lower))
    if info != 0:
        raise np.linalg.LinAlgError(f"?syevd workspace query failed (info={info})")
    return int(size), int(isize)


class TorchOps(Ops):
    name = "torch"

    def __init__(self, dtype: str = "float64", device: str | None = None) -> None:
        import torch

        super().__init__(dtype)
        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.dtype = getattr(torch, dtype)

    def asarray(self, x: Any) -> Any:
        t = x if isinstance(x, self.torch.Tensor) else self.torch.from_numpy(np.ascontiguousarray(x))
        return t.to(device=self.device, dtype=self.dtype).contiguous()

    def index(self, idx: np.ndarray) -> Any:
        return self.torch.as_tensor(np.asarray(idx), device=self.device, dtype=self.torch.long)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().cpu().numpy() if isinstance(x, self.torch.Tensor) else np.asarray(x)

    @property
    def shares_triangles(self) -> bool:
        return False  # the updates below write whole matrices

    def eigh(self, a: Any, lower: bool = True) -> tuple[Any, Any]:
        return self.torch.linalg.eigh(a, UPLO="L" if lower else "U")

    def solve_spd(self, a: Any, b: Any) -> Any:
        # ``a`` is whole here (no shared triangles), so either triangle gives the same factor
        factor, info = self.torch.linalg.cholesky_ex(a)
        if int(info) != 0:
            raise np.linalg.LinAlgError("matrix is not positive definite")
        return self.torch.cholesky_solve(b, factor)

    def add_gram(self, acc: Any, a: Any, alpha: float = 1.0, lower: bool = False) -> None:
        acc.addmm_(a.T, a, alpha=alpha)

    def add_row_gram(self, acc: Any, a: Any) -> None:
        acc.addmm_(a, a.T)

    one_triangle = False

    def add_outer(self, acc: Any, v: Any, alpha: float, lower: bool = False) -> None:
        acc.addr_(v, v, alpha=alpha)

    def take(self, x: Any, idx: Any, axis: int) -> Any:
        return self.torch.index_select(x, axis, idx)

    def add_diagonal(self, a: Any, value: float) -> Any:
        out = a.clone()
        out.diagonal().add_(value)
        return out

    def clamp_min(self, x: Any, value: float) -> Any:
        return self.torch.clamp(x, min=value)

    def zeros(self, shape: tuple[int, ...]) -> Any:
        return self.torch.zeros(shape, dtype=self.dtype, device=self.device)

    def empty(self, shape: tuple[int, ...]) -> Any:
        return self.torch.empty(shape, dtype=self.dtype, device=self.device)

    def put(self, out: Any, rows: slice, values: np.ndarray) -> None:
        out[rows] = self.asarray(values)

    def sqnorm_cols(self, p: Any) -> Any:
        return self.torch.linalg.vector_norm(p, dim=0) ** 2

    def sqnorm_blocks(self, p: Any) -> Any:
        return self.torch.linalg.vector_norm(p, dim=1) ** 2

    def dot_cols(self, a: Any, b: Any) -> Any:
        return (a * b).sum(0)

    def take_rows(self, table: Any, rows: Any) -> Any:
        return self.torch.gather(table, 0, rows[None, :])[0]

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()


def gpu_device_present() -> bool:
    """Whether the machine has a GPU device file (a glob of /dev: microseconds, no import)."""
    return any(glob.glob(pattern) for pattern in GPU_DEVICE_FILES)


def cuda_available() -> bool:
    """``torch.cuda.is_available()``, without importing torch (1.5 s and 200 MB, most of a CPU fit
    job's cost) on a machine with no GPU device: torch is asked when it is already imported or a
    GPU device file exists, so a GPU is used whenever torch would find one."""
    torch = sys.modules.get("torch")
    if torch is None:
        if not gpu_device_present():
            return False
        try:
            import torch
        except ImportError:
            return False
    return bool(torch.cuda.is_available())


def get_ops(backend: str = "auto", dtype: str = "float64", device: str | None = None) -> Ops:
    """``auto``: torch on a CUDA GPU when one is present, numpy otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; known: {list(BACKENDS)}")
    if backend == "auto":
        backend = "torch" if cuda_available() else "numpy"
    return TorchOps(dtype, device) if backend == "torch" else Ops(dtype)
