"""A corrupt Numba on-disk cache is a cache miss, not a failed run.

Numba (``@njit(cache=True)``) reads its index (``*.nbi``) and data (``*.nbc``) files with pickle
and lets a truncated or damaged file raise ``UnpicklingError``/``EOFError`` in every later run
(it treats only a missing file as a miss).  ``install`` wraps the two readers of
``numba.core.caching.IndexDataCacheFile`` so that such a file is removed and the function is
compiled again (and re-cached); and ``Cache._load_overload``, for a data file that unpickles but
whose compiled code does not load (damaged LLVM bitcode: "LLVM bitcode parsing error").  Where a
Numba version lacks these methods nothing is changed.

Damage that still unpickles can also reach LLVM, whose assertions abort the process (measured: a
cache file with 64 bytes overwritten in its middle ended the run with SIGABRT in
``LLVMPY_CloneModule``).  So every file ocnet's processes write carries a SHA-256 trailer
(``_dump``), checked before anything is unpickled; a file without one (written by Numba
elsewhere, or truncated) is read as before.
"""
import hashlib
import io
import pickle
import os
import sys

_DONE = False


def install():
    global _DONE
    if _DONE:
        return
    _DONE = True
    try:
        from numba.core.caching import IndexDataCacheFile as F
    except ImportError:
        return
    if not (hasattr(F, "_load_index") and hasattr(F, "_load_data")):
        return
    load_index, load_data = F._load_index, F._load_data
    dump = getattr(F, "_dump", None)

    def _dump(self, obj):
        data = dump(self, obj)
        return data + MAGIC + hashlib.sha256(data).digest()

    def _load_index(self):
        try:
            with open(self._index_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        try:
            stream = io.BytesIO(raw)
            pickle.load(stream)  # Numba's version pickle precedes the checksummed part
            _verified(raw[stream.tell():])
            return load_index(self)  # Numba's reader (pickle ignores the trailer)
        except OSError:
            raise
        except Exception as e:  # damaged index: forget it (the next save rewrites it)
            _drop(getattr(self, "_index_path", None), e)
            return {}

    def _load_data(self, name):
        path = self._data_path(name)
        try:
            with open(path, "rb") as f:
                raw = f.read()
            payload = _verified(raw)
            return load_data(self, name) if payload is None else pickle.loads(payload)
        except OSError:
            raise
        except Exception as e:  # damaged data file: numba's load() treats OSError as a miss
            _drop(path, e)
            raise OSError(f"corrupt Numba cache file {name}") from e

    F._load_index, F._load_data = _load_index, _load_data
    if dump is not None:
        F._dump = _dump

    from numba.core.caching import Cache
    if not hasattr(Cache, "_load_overload"):
        return
    load_overload = Cache._load_overload

    def _load_overload(self, sig, target_context):
        try:
            return load_overload(self, sig, target_context)
        except OSError:
            raise
        except Exception as e:  # the code itself is damaged: drop the function's index (a miss)
            _drop(getattr(getattr(self, "_cache_file", None), "_index_path", None), e)
            return None

    Cache._load_overload = _load_overload


#: marks the SHA-256 trailer of a cache file written by ocnet
MAGIC = b"\x00ocnet-sha256\x00"


class DamagedCacheFile(ValueError):
    pass


def _verified(raw):
    """The payload of a file with a trailer, None without one; DamagedCacheFile when the
    checksum does not match."""
    n = len(MAGIC) + 32
    if len(raw) < n or raw[-n:-32] != MAGIC:
        return None
    payload = raw[:-n]
    if hashlib.sha256(payload).digest() != raw[-32:]:
        raise DamagedCacheFile("checksum mismatch")
    return payload


def _drop(path, err):
    if path:
        try:
            os.remove(path)
        except OSError:
            pass
    sys.stderr.write(f"ocnet: note: recompiling: corrupt Numba cache file {path} ({type(err).__name__})\n")
