"""A corrupt Numba on-disk cache is a cache miss, not a failed run.

Numba (``@njit(cache=True)``) reads its index (``*.nbi``) and data (``*.nbc``) files with pickle
and lets a truncated or damaged file raise ``UnpicklingError``/``EOFError`` in every later run
(it treats only a missing file as a miss).  ``install`` wraps the two readers of
``numba.core.caching.IndexDataCacheFile`` so that such a file is removed and the function is
compiled again (and re-cached); and ``Cache._load_overload``, for a data file that unpickles but
whose compiled code does not load (damaged LLVM bitcode: "LLVM bitcode parsing error").  Where a
Numba version lacks these methods nothing is changed.
"""
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

    def _load_index(self):
        try:
            return load_index(self)
        except OSError:
            raise
        except Exception as e:  # damaged index: forget it (the next save rewrites it)
            _drop(getattr(self, "_index_path", None), e)
            return {}

    def _load_data(self, name):
        try:
            return load_data(self, name)
        except OSError:
            raise
        except Exception as e:  # damaged data file: numba's load() treats OSError as a miss
            _drop(self._data_path(name), e)
            raise OSError(f"corrupt Numba cache file {name}") from e

    F._load_index, F._load_data = _load_index, _load_data

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


def _drop(path, err):
    if path:
        try:
            os.remove(path)
        except OSError:
            pass
    sys.stderr.write(f"ocnet: note: recompiling: corrupt Numba cache file {path} ({type(err).__name__})\n")
