"""cnnc_net: networks compiled by `cnnc NET.cnn --emit=python -o DIR`, from Python.

DIR holds lib<net>.so (the network's kernels, its plans and cnnc's runtime, behind the C API of
runtime/capi.h) and this module. Only numpy is needed; PyTorch is not.

    import sys; sys.path.insert(0, "DIR")
    import cnnc_net
    net = cnnc_net.load("lenet5", weights="run/weights.safetensors")
    scores = net(x)                        # x: float32 [N, C, H, W] -> [N, classes]
    loss = net.train_step(x, labels, 0.05)  # one SGD step (as `X step`); labels: int [N]
    net.save("w.safetensors")
    sd = net.state_dict()                  # {name: numpy array}, PyTorch's names

Errors from the library raise CnncError with its message; arguments of the wrong shape or type
raise ValueError before anything runs.
"""
import ctypes
import os

import numpy as np

__all__ = ["CnncError", "Net", "load"]


class CnncError(RuntimeError):
    """An error reported by the compiled network (its message is cnnc_error's)."""


_i64 = ctypes.c_int64
_f32p = ctypes.POINTER(ctypes.c_float)
_i64p = ctypes.POINTER(ctypes.c_int64)


def _bind(lib):
    sig = {
        "cnnc_create": (ctypes.c_void_p, [ctypes.c_int]),
        "cnnc_load_weights": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
        "cnnc_save_weights": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p]),
        "cnnc_forward": (ctypes.c_int, [ctypes.c_void_p, _f32p, _i64, _f32p]),
        "cnnc_input_shape": (ctypes.c_int, [ctypes.c_void_p, _i64p]),
        "cnnc_output_shape": (ctypes.c_int, [ctypes.c_void_p, _i64p]),
        "cnnc_name": (ctypes.c_char_p, [ctypes.c_void_p]),
        "cnnc_error": (ctypes.c_char_p, [ctypes.c_void_p]),
        "cnnc_free": (None, [ctypes.c_void_p]),
        "cnnc_param_count": (_i64, [ctypes.c_void_p]),
        "cnnc_param_name": (ctypes.c_char_p, [ctypes.c_void_p, _i64]),
        "cnnc_param_shape": (ctypes.c_int, [ctypes.c_void_p, _i64, _i64p]),
        "cnnc_param_is_float": (ctypes.c_int, [ctypes.c_void_p, _i64]),
        "cnnc_param_get": (ctypes.c_int, [ctypes.c_void_p, _i64, _f32p]),
        "cnnc_param_int": (ctypes.c_int, [ctypes.c_void_p, _i64, _i64p]),
        "cnnc_can_train": (ctypes.c_int, [ctypes.c_void_p]),
        "cnnc_train_step": (ctypes.c_int, [ctypes.c_void_p, _f32p, _i64p, _i64, ctypes.c_double, ctypes.POINTER(ctypes.c_double)]),
    }
    for name, (res, args) in sig.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args


class Net:
    """One compiled network: its weights live in the library; calls run its kernels."""

    def __init__(self, library, weights=None, threads=0):
        if not os.path.exists(library):
            raise FileNotFoundError(f"{library}: no such network library (build it with cnnc NET.cnn --emit=python -o DIR)")
        self._lib = ctypes.CDLL(os.path.abspath(library))
        _bind(self._lib)
        self._net = self._lib.cnnc_create(int(threads))
        if not self._net:
            raise CnncError(f"{library}: the network could not be created (its embedded plan is damaged)")
        self.name = self._lib.cnnc_name(self._net).decode()
        self.input_shape = self._shape(self._lib.cnnc_input_shape)
        self.output_shape = self._shape(self._lib.cnnc_output_shape)
        if weights is not None:
            self.load_weights(weights)

    def _shape(self, fn):
        dims = (_i64 * 3)()
        rank = fn(self._net, dims)
        return tuple(dims[i] for i in range(rank))

    def _check(self, rc):
        if rc != 0:
            raise CnncError(self._lib.cnnc_error(self._net).decode())

    def _images(self, x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.ndim != len(self.input_shape) + 1 or x.shape[1:] != self.input_shape or x.shape[0] < 1:
            want = "[N, " + ", ".join(map(str, self.input_shape)) + "]"
            raise ValueError(f"{self.name} takes input of shape {want} (N >= 1), got {list(x.shape)}")
        return x

    def load_weights(self, path):
        """Loads a safetensors file with PyTorch state_dict names (all or nothing)."""
        self._check(self._lib.cnnc_load_weights(self._net, os.fsencode(path)))

    def save(self, path):
        """Writes the weights as safetensors with PyTorch state_dict names, atomically."""
        self._check(self._lib.cnnc_save_weights(self._net, os.fsencode(path)))

    def __call__(self, x):
        """Inference: float32 [N, *input_shape] -> [N, *output_shape]."""
        x = self._images(x)
        out = np.empty((x.shape[0],) + self.output_shape, dtype=np.float32)
        self._check(self._lib.cnnc_forward(self._net, x.ctypes.data_as(_f32p), x.shape[0], out.ctypes.data_as(_f32p)))
        return out

    @property
    def can_train(self):
        return bool(self._lib.cnnc_can_train(self._net))

    def train_step(self, x, labels, lr):
        """One training step as `X step` runs it (cross-entropy, backward, BN statistics, then
        w -= lr * grad); returns the batch's mean loss before the update."""
        x = self._images(x)
        per_image = self.output_shape[1:] if len(self.output_shape) == 3 else ()
        y = np.asarray(labels)
        if not np.issubdtype(y.dtype, np.integer) or y.shape != (x.shape[0],) + per_image:
            raise ValueError(f"labels must be integers of shape {[x.shape[0], *per_image]} (class indices), got {y.dtype} {list(y.shape)}")
        y = np.ascontiguousarray(y, dtype=np.int64)
        loss = ctypes.c_double()
        self._check(self._lib.cnnc_train_step(self._net, x.ctypes.data_as(_f32p), y.ctypes.data_as(_i64p), x.shape[0], float(lr), ctypes.byref(loss)))
        return loss.value

    def state_dict(self):
        """{name: numpy array} in PyTorch's order and names (copies)."""
        out = {}
        dims = (_i64 * 8)()
        for i in range(self._lib.cnnc_param_count(self._net)):
            name = self._lib.cnnc_param_name(self._net, i).decode()
            shape = tuple(dims[k] for k in range(self._lib.cnnc_param_shape(self._net, i, dims)))
            if self._lib.cnnc_param_is_float(self._net, i):
                a = np.empty(shape, dtype=np.float32)
                self._check(self._lib.cnnc_param_get(self._net, i, a.ctypes.data_as(_f32p)))
            else:
                v = _i64()
                self._check(self._lib.cnnc_param_int(self._net, i, ctypes.byref(v)))
                a = np.array(v.value, dtype=np.int64).reshape(shape)
            out[name] = a
        return out

    def close(self):
        if getattr(self, "_net", None):
            self._lib.cnnc_free(self._net)
            self._net = None

    def __del__(self):
        self.close()

    def __repr__(self):
        return f"<cnnc_net.Net {self.name}: {list(self.input_shape)} -> {list(self.output_shape)}>"


def load(name, weights=None, threads=0, folder=None):
    """The network `name` of lib<name>.so in `folder` (default: this module's folder).
    weights: a safetensors file (default: PyTorch-style random initial weights, seed 0).
    threads: worker threads (0: all cores)."""
    folder = folder or os.path.dirname(os.path.abspath(__file__))
    return Net(os.path.join(folder, f"lib{name}.so"), weights=weights, threads=threads)
