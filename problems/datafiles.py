"""Classification data from users' files: features (samples, features) and integer labels (samples,).

Formats, chosen by the file name's ending:
  ``.npz``  arrays named by ``x_name`` / ``y_name`` (numpy.load)
  ``.npy``  one array (numpy.load); labels from a separate file or a label column
  ``.mat``  MATLAB variables named by ``x_name`` / ``y_name`` (scipy.io.loadmat)
  other     text: CSV (a comma, else a semicolon, in the first data line) or whitespace-separated
            columns (numpy.loadtxt),
            e.g. the ``.dat`` files of the paper's C++ code (Guenther et al. 2020)
Labels are integers (a vector or one column) or one-hot rows.  Every problem with the files or
their contents raises ``OcnetError`` with one line naming the file; nothing is written.
"""
import os
import re
import sys

import numpy as np

from ocnet.base.errors import OcnetError

#: the binary formats (numpy, scipy.io); every other ending is read as a text table
BINARY = (".npz", ".npy", ".mat")
#: what the text tables' messages say of their separators (_text_delimiter)
SEPARATORS = "commas, semicolons or blanks"


def _data_lines(path, skip_rows, errors=None):
    """(line number from 1, line) of each data line of text file ``path``, as numpy.loadtxt reads
    them: after ``skip_rows``, blank lines and '#' comment lines left out."""
    with open(path, errors=errors) as f:
        for number, line in enumerate(f, 1):
            if number > skip_rows and line.strip() and not line.lstrip().startswith("#"):
                yield number, line


def _text_delimiter(path, skip_rows):
    for _, line in _data_lines(path, skip_rows):
        return "," if "," in line else ";" if ";" in line else None
    return None


def _fields(line, delimiter):
    """The non-empty fields of a text table's line (``delimiter`` None: whitespace)."""
    return [t.strip() for t in (line.split(delimiter) if delimiter else line.split()) if t.strip()]


def _number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _file_line(path, skip_rows, row):
    """The line number (from 1) in text file ``path`` of numpy.loadtxt's data row ``row`` (from 0:
    lines after ``skip_rows``, blank and '#' comment lines not counted); '?' if not found."""
    try:
        for k, (number, _) in enumerate(_data_lines(path, skip_rows, errors="replace")):
            if k == row:
                return number
    except OSError:
        pass
    return "?"


def _skipped_data_line(path, skip_rows, delimiter):
    """The last line -skip_rows skips in text file ``path`` when it reads as numbers with as many
    columns as the first data line (a header in only some of the files: a sample dropped), or None."""
    lines = []
    with open(path) as f:
        for i, line in enumerate(f):
            if i > skip_rows:
                break
            lines.append(line)
    if len(lines) <= skip_rows:
        return None
    skipped, first = lines[skip_rows - 1], lines[skip_rows]
    fields = _fields(skipped, delimiter)
    if not all(_number(t) for t in fields):
        return None
    return skipped.strip() if fields and len(fields) == len(_fields(first, delimiter)) else None


def _variable(path, store, name, option):
    keys = [k for k in store.keys() if not k.startswith("__")]
    if name not in keys:
        raise OcnetError(f"{path}: no variable '{name}' (option -{option}; the file holds: {', '.join(keys) or 'none'})")
    return np.asarray(store[name])


def read_array(path, what, name=None, option=None, skip_rows=0):
    """The array in file ``path`` (for .npz/.mat the variable ``name``, given by option ``-option``).

    ``what`` names the array in messages (e.g. '-train_file').  Raises OcnetError for a missing or
    unreadable file, a missing variable, or an array that is not numeric."""
    if not path:
        raise OcnetError(f"{what}: no file given")
    if not os.path.isfile(path):
        raise OcnetError(f"{what}: no file '{path}'")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            with np.load(path, allow_pickle=False) as store:
                a = _variable(path, store, name, option)
        elif ext == ".npy":
            a = np.load(path, allow_pickle=False)
        elif ext == ".mat":
            import scipy.io
            a = _variable(path, scipy.io.loadmat(path), name, option)
        else:
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # numpy warns on an empty text file
                delimiter = _text_delimiter(path, skip_rows)
                a = np.loadtxt(path, delimiter=delimiter, skiprows=skip_rows, ndmin=2)
            line = _skipped_data_line(path, skip_rows, delimiter) if skip_rows else None
            if line is not None:  # (read on rank 0: see on_root)
                print(f"ocnet: warning: {what}: -skip_rows {skip_rows} skips line {skip_rows} of '{path}', which "
                      f"reads as data ('{line[:60]}'): a sample lost unless it is a header (files of one layout)",
                      file=sys.stderr, flush=True)
    except OcnetError:
        raise
    except Exception as e:  # noqa: B902 - whatever numpy/scipy raise on a damaged file (EOFError,
        # BadZipFile, MatReadError, IndexError, ...): it is the file, said in one line
        binary = ext in BINARY
        if not binary and not isinstance(
                e, (ValueError, OSError, UserWarning, NotImplementedError, TypeError, UnicodeDecodeError)):
            raise
        text = str(e).splitlines()[0] if str(e) else type(e).__name__
        cell = None  # (a text cell that is not a number: data row from 0, field from 0, its text)
        if binary:
            if os.path.getsize(path) == 0:
                text = "the file is empty"
            elif "pickled" in text:  # (numpy's last resort for bytes it does not recognise)
                text = f"not a {ext} file (numpy takes it for pickled data, which is not loaded)"
            else:
                text = f"not a readable {ext} file ({type(e).__name__}: {text})"
        elif (m := re.match(r"could not convert string '(.*)' to float\d* at row (\d+), column (\d+)", text)):
            row0, col = int(m.group(2)), int(m.group(3))  # (numpy: data rows from 0, columns from 1)
            cell = (row0, col - 1, m.group(1))
            text = (f"line {_file_line(path, skip_rows, row0)}, field {col}: '{m.group(1)}' is not a number "
                    "(lines and fields counted from 1, as an editor shows them"
                    + (f"; a header line: -skip_rows {skip_rows + 1}" if row0 == 0 else "")
                    + f"; separators: {SEPARATORS})")
        elif (m := re.match(r"the number of columns changed from (\d+) to (\d+) at row (\d+)", text)):
            line = _file_line(path, skip_rows, int(m.group(3)) - 1)  # (numpy: data rows from 1 here)
            text = (f"line {line} has {m.group(2)} fields, the lines before it {m.group(1)} (lines counted from "
                    f"1, as an editor shows them; separators: {SEPARATORS})")
        error = OcnetError(f"{what}: cannot read '{path}': {text}")
        error.cell = cell  # (for the label-column hint: _text_in_label_column)
        raise error from None
    if a.dtype.kind not in "biuf":
        raise OcnetError(f"{what}: '{path}' does not hold numbers (dtype {a.dtype})")
    return a


def _squeeze_labels(y, n=None):
    """A label column (n, 1), or MATLAB's row vector (1, n) of ``n`` labels, becomes (n,)."""
    if y.ndim == 2 and (y.shape[1] == 1 or (y.shape[0] == 1 and n is not None and y.shape[1] == n != 1)):
        return y.reshape(-1)
    return y


def as_class_indices(y, what, base=0):
    """Integer labels (n,) from integer labels (n,) / (n, 1) or one-hot rows (n, C), minus ``base``.

    Raises OcnetError for non-integer values, rows that are not one-hot, and labels below 0."""
    y = _squeeze_labels(np.asarray(y))
    if y.ndim == 2:
        if not (np.isin(y, (0, 1)).all() and (y.sum(axis=1) == 1).all()):
            bad = int(np.flatnonzero(~(np.isin(y, (0, 1)).all(axis=1) & (y.sum(axis=1) == 1)))[0])
            raise OcnetError(f"{what}: labels of {y.shape[1]} columns are not one-hot (row {bad})")
        return np.argmax(y, axis=1).astype(np.int64)
    if y.ndim != 1:
        raise OcnetError(f"{what}: labels must be a vector or one-hot rows, got shape {y.shape}")
    yf = y.astype(np.float64)
    ok = np.isfinite(yf) & (yf == np.round(yf))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise OcnetError(f"{what}: labels must be integers (row {i}: {y[i].item()!r})")
    yi = yf.astype(np.int64) - base
    if yi.size and yi.min() < 0:
        i = int(np.argmin(yi))
        raise OcnetError(f"{what}: label {yi[i] + base} (row {i}) is out of range: labels start at {base} "
                         f"(option -label_base)")
    return yi


def as_features(X, what):
    """Features as float64 (n, f); raises OcnetError for other shapes and NaN/Inf."""
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise OcnetError(f"{what}: features must be a (samples, features) table, got shape {X.shape}")
    X = np.array(X, dtype=np.float64, order="C")  # .mat arrays come Fortran-ordered: same sums as other formats
    bad = ~np.isfinite(X)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise OcnetError(f"{what}: features hold NaN or Inf (row {r}, column {c}; both counted from 0)")
    return X


def _holds(path, name):
    """Whether the .npz/.mat file ``path`` (already read) holds a variable ``name``."""
    if path.lower().endswith(".npz"):
        with np.load(path, allow_pickle=False) as store:
            return name in store.files
    import scipy.io
    return any(v[0] == name for v in scipy.io.whosmat(path))


def read_labelled(features, labels=None, x_name="X", y_name="y", label_column=-1, skip_rows=0,
                  label_base=0, what="-train_file"):
    """(X (n, f) float64, y (n,) int64) from a features file and an optional labels file.

    Labels come from ``labels`` if given, else from the variable ``y_name`` of a .npz/.mat features
    file, else from column ``label_column`` of a table (the remaining columns are the features)."""
    ext = os.path.splitext(features or "")[1].lower()
    keyed = ext in (".npz", ".mat")
    try:
        A = read_array(features, what, x_name, "x_name", skip_rows)
    except OcnetError as e:
        raise _text_in_label_column(e, features, labels, keyed or ext == ".npy", label_column, skip_rows) from None
    if labels:
        lwhat = what.replace("_file", "_labels")
        y = read_array(labels, lwhat, y_name, "y_name", skip_rows)
        X = A
        if keyed and _holds(features, y_name):  # (read on rank 0: see on_root)
            print(f"ocnet: warning: {lwhat} '{labels}' replaces the labels '{y_name}' that {what} '{features}' "
                  f"holds too (give one of them)", file=sys.stderr, flush=True)
    elif keyed:
        try:
            y = read_array(features, what, y_name, "y_name", skip_rows)
        except OcnetError as e:
            hint = "; features without labels: -val_unlabelled" if what == "-val_file" else ""
            raise OcnetError(f"{e}{hint}") from None
        X, lwhat = A, what
    else:
        if A.ndim != 2 or A.shape[1] < 2:
            raise OcnetError(f"{what}: '{features}' has {A.shape[1] if A.ndim == 2 else 1} column(s): need features "
                             f"and a label column (-label_column), or a labels file")
        c = label_column if label_column >= 0 else A.shape[1] + label_column
        if not 0 <= c < A.shape[1]:
            raise OcnetError(f"{what}: -label_column {label_column} is out of range for {A.shape[1]} columns")
        y, X, lwhat = A[:, c], np.delete(A, c, axis=1), what
    X = as_features(X, what)
    y = np.atleast_1d(_squeeze_labels(np.asarray(y), X.shape[0]))
    if y.shape[0] != X.shape[0]:
        raise OcnetError(f"{lwhat}: {y.shape[0]} label rows for {X.shape[0]} feature rows")
    if X.shape[0] == 0:
        raise OcnetError(f"{what}: '{features}' holds no samples")
    try:
        return X, as_class_indices(y, lwhat, label_base)
    except OcnetError as e:
        text = str(e)
        if not labels and not keyed and "must be integers" in text:  # (a table's label column)
            text += (f" (the labels are column {c + 1} of {A.shape[1]}, counted from 1: -label_column "
                     f"{label_column}{', the last, by default' if label_column == -1 else ''}; labels in a file of "
                     f"their own: {what.replace('_file', '_labels')} FILE)")
        if what == "-val_file" and not labels:
            text += "; features without labels: -val_unlabelled"
        raise OcnetError(text) from None


def _text_in_label_column(err, features, labels, binary, label_column, skip_rows):
    """``err`` (a text table that did not parse) with the cause named when the text is in the label
    column: class names (e.g. 'setosa') are not labels ocnet reads; else ``err`` as it is."""
    cell = getattr(err, "cell", None)  # (data row from 0, field from 0, its text)
    if labels or binary or cell is None:
        return err
    try:
        line = next(_data_lines(features, skip_rows))[1]
        delimiter = _text_delimiter(features, skip_rows)
        ncols = len(line.split(delimiter))
    except (OSError, StopIteration, UnicodeDecodeError):
        return err
    c = label_column if label_column >= 0 else ncols + label_column
    if cell[1] != c:
        return err
    if ncols == 1 and any(ch.isdigit() for ch in line):  # (one column of numbers and other separators)
        return OcnetError(f"{str(err).split(':', 1)[0]}: the first line read is one column ('{line.strip()[:60]}'): "
                          f"separators are {SEPARATORS}")
    if cell[0] == 0 and not any(_number(t) for t in _fields(line, delimiter)):  # (every field text: a header)
        return OcnetError(f"{str(err).split(':', 1)[0]}: the first line read is text in every column ('{line.strip()[:60]}'): "
                          f"a header line? -skip_rows {skip_rows + 1}")
    return OcnetError(f"{str(err).split(':', 1)[0]}: the label column ({c + 1} of {ncols}, counted from 1: "
                      f"-label_column {label_column}) holds text ('{cell[2]}'): labels must be numbers, e.g. "
                      "the class names mapped to 0, 1, ... (or one-hot rows in a labels file)")


def stratified_split(y, n_val, seed, n_train=None, what="-val_fraction"):
    """Seeded stratified split of the indices of ``y``: (train indices, validation indices), each
    sorted.  ``n_val`` samples go to validation (``n_train`` to training, default: the rest);
    scikit-learn's train_test_split.  Raises OcnetError when a side would be empty or the
    classes cannot be stratified."""
    from sklearn.model_selection import train_test_split

    n = y.shape[0]
    n_train = n - n_val if n_train is None else n_train
    if n_val < 1 or n_train < 1:
        raise OcnetError(f"{what}: the split leaves {n_train} training and {n_val} validation samples "
                         f"(of {n}); both must be at least 1")
    if n_train + n_val > n:
        raise OcnetError(f"{what}: {n_train} training + {n_val} validation samples, but only {n} are labelled")
    try:
        tr, va = train_test_split(np.arange(n), train_size=n_train, test_size=n_val, stratify=y, random_state=seed)
    except ValueError as e:
        raise OcnetError(f"{what}: cannot split {n} samples stratified by class: {e}") from None
    return np.sort(tr), np.sort(va)


def standardiser(X):
    """Per-feature (mean, scale) of training features X (n, f); constant features get scale 1."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    return mean, scale


def check_validation_options(v, comm, new="samples"):
    """The validation-file options of the values ``v``: -val_labels and -val_unlabelled need
    -val_file and exclude each other (OcnetError); -val_unlabelled without -predictions is warned
    of on rank 0 (the ``new`` samples are scored, and nothing is written)."""
    if v["val_labels"] and not v["val_file"]:
        raise OcnetError("-val_labels needs -val_file")
    if v["val_unlabelled"] and not v["val_file"]:
        raise OcnetError("-val_unlabelled needs -val_file")
    if v["val_unlabelled"] and v["val_labels"]:
        raise OcnetError("give -val_labels or -val_unlabelled, not both")
    from petsc4py import PETSc
    if v["val_unlabelled"] and not PETSc.Options().getBool("predictions", False) and comm.Get_rank() == 0:
        print(f"ocnet: warning: -val_unlabelled without -predictions: the new {new} are scored but no "
              "prediction is written (add -predictions -run_dir R: R/predictions_val.csv)", file=sys.stderr,
              flush=True)


def on_root(comm, load):
    """Run ``load()`` on rank 0 only and hand its result (or its OcnetError) to every rank, so all
    ranks see the same data and fail together with rank 0's message."""
    result = error = None
    if comm.Get_rank() == 0:
        try:
            result = load()
        except OcnetError as e:
            error = str(e)
    error = comm.bcast(error, root=0)
    if error is not None:
        raise OcnetError(error)
    return comm.bcast(result, root=0)
