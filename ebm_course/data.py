"""MNIST and FashionMNIST in [-1, 1], with an offline fallback.

Every image this module hands out is a float32 tensor of shape ``[1, 28, 28]`` with values in
``[-1, 1]``: torchvision's ``ToTensor()`` (uint8 ``x`` -> ``x / 255`` in ``[0, 1]``) followed by
``Normalize((0.5,), (0.5,))`` (``(y - 0.5) / 0.5``), i.e. ``x / 255 * 2 - 1``. Labels are ``int``
class indices 0..9.

Where the data comes from, in order:

1. the raw IDX files under ``<root>/MNIST/raw`` (or ``<root>/FashionMNIST/raw``), torchvision's
   layout, where ``root`` is the argument, else the environment variable ``PATH_DATASETS`` (as in
   the original tutorial), else ``data/``;
2. torchvision's download into that folder (when ``download=True`` and a network is there);
3. for MNIST only, a 2,000-image sample of MNIST **train** shipped in
   ``ebm_course/assets/mnist_sample.npz``, with a ``UserWarning`` that says so.

torchvision is imported inside the functions that need it, so ``import ebm_course.data`` stays
cheap.

Example::

    from ebm_course.data import load_mnist, to_tensors

    train_set = load_mnist(train=True)        # Dataset of (tensor [1, 28, 28], int)
    images, labels = to_tensors(train_set)    # float32 [N, 1, 28, 28], int64 [N]
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import checks

if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from torchvision.transforms import Compose

__all__ = [
    "DATASETS",
    "SAMPLE_PATH",
    "MNISTSample",
    "dataset_root",
    "load_dataset",
    "load_fashion_mnist",
    "load_mnist",
    "mnist_transform",
    "to_tensors",
]

#: Names accepted by :func:`load_dataset`.
DATASETS = ("mnist", "fashion_mnist")

#: The shipped offline sample: the first 2,000 images of the project's MNIST train files.
SAMPLE_PATH = Path(__file__).resolve().parent / "assets" / "mnist_sample.npz"

# name -> (torchvision class name, which is also the folder under the root; display name)
_SOURCES = {"mnist": ("MNIST", "MNIST"), "fashion_mnist": ("FashionMNIST", "FashionMNIST")}
_RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
_ALIASES = {"fashionmnist": "fashion_mnist"}

Transform = Callable[[Any], Any]


def dataset_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder that holds (or will hold) the datasets.

    Args:
        root: an explicit folder. When ``None``, the environment variable ``PATH_DATASETS`` is
            used (the name the original tutorial uses); when that is unset or empty, ``data/``
            (relative to the working directory).

    Returns:
        The folder as a :class:`~pathlib.Path` (``~`` expanded). It need not exist.
    """
    if root is None:
        root = os.environ.get("PATH_DATASETS") or "data"
    return Path(root).expanduser()


def mnist_transform() -> Compose:
    """The image transform used throughout the course.

    ``Compose([ToTensor(), Normalize((0.5,), (0.5,))])``: takes a PIL image (mode ``"L"``,
    28x28, as torchvision's MNIST datasets hand out) and returns a float32 tensor of shape
    ``[1, 28, 28]`` with values ``x / 255 * 2 - 1`` in ``[-1, 1]``.
    """
    from torchvision import transforms

    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])


class MNISTSample(Dataset):
    """The offline MNIST sample shipped with the package, shaped like torchvision's ``MNIST``.

    Holds the first 2,000 images of MNIST **train** as the project's offline data has them
    (see ``ebm_course/assets/README.md``). It has no test split.

    Attributes:
        data: uint8 tensor ``[N, 28, 28]``, pixels 0..255 (``N = 2000`` for the shipped file).
        targets: int64 tensor ``[N]``, digits 0..9.
        transform: applied to each PIL image; ``mnist_transform()`` unless another was given.
        target_transform: applied to each ``int`` label, if given.

    ``dataset[i]`` returns ``(image, label)``: with the default transform, ``image`` is a float32
    tensor ``[1, 28, 28]`` in ``[-1, 1]`` and ``label`` an ``int``, exactly as from
    ``torchvision.datasets.MNIST(..., transform=mnist_transform())``.
    """

    classes = [
        "0 - zero",
        "1 - one",
        "2 - two",
        "3 - three",
        "4 - four",
        "5 - five",
        "6 - six",
        "7 - seven",
        "8 - eight",
        "9 - nine",
    ]

    def __init__(
        self,
        path: str | os.PathLike[str] = SAMPLE_PATH,
        transform: Transform | None = None,
        target_transform: Transform | None = None,
    ) -> None:
        self.path = Path(path)
        images, labels = _read_sample(self.path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(labels) != len(images):
            raise ValueError(
                f"{self.path}: expected images [N, 28, 28] and labels [N], "
                f"got {images.shape} and {labels.shape}"
            )
        self.data = torch.from_numpy(images.copy())
        self.targets = torch.from_numpy(labels.astype(np.int64))
        self.transform = mnist_transform() if transform is None else transform
        self.target_transform = target_transform
        self.train = True

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        from PIL import Image

        img = Image.fromarray(self.data[index].numpy())  # 2-D uint8 -> mode "L"
        target: Any = int(self.targets[index])
        img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def __repr__(self) -> str:
        return f"MNISTSample(n={len(self)}, path={str(self.path)!r})"


def _read_sample(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The ``images`` and ``labels`` arrays of an ``.npz`` sample; errors name the file."""
    if not path.is_file():
        raise FileNotFoundError(f"MNIST sample file not found: {path}")
    try:
        with np.load(path) as npz:  # numpy refuses object arrays by default
            return np.asarray(npz["images"], dtype=np.uint8), np.asarray(npz["labels"])
    except KeyError as err:
        raise ValueError(f"{path} lacks the array {err} (needs 'images' and 'labels')") from None
    except Exception as err:  # not an .npz file, truncated, pickled objects, ...
        raise ValueError(f"could not read the MNIST sample {path}: {_first_line(err)}") from err


def _canonical_name(name: str) -> str:
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    key = _ALIASES.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}")
    return key


def _missing_files(raw: Path) -> list[str]:
    return [f for f in _RAW_FILES if not (raw / f).is_file()]


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")


def _load(
    name: str,
    train: bool,
    root: str | os.PathLike[str] | None,
    download: bool,
    fallback: bool,
    transform: Transform | None,
    stacklevel: int,
) -> Dataset:
    """The loader behind :func:`load_dataset` and its siblings: the raw files under the root,
    else a download (when allowed), else the shipped sample (MNIST with ``fallback``), else a
    :class:`FileNotFoundError`. ``stacklevel`` points the fallback's warning at the caller."""
    key = _canonical_name(name)
    folder, display = _SOURCES[key]
    root_path = _root_folder(root, folder)
    raw = root_path / folder / "raw"
    if transform is None:
        transform = mnist_transform()

    import torchvision.datasets

    cls = getattr(torchvision.datasets, folder)
    if not _missing_files(raw):
        _check_raw_files(raw, train)
        try:
            return cls(str(root_path), train=train, transform=transform, download=False)
        except (AssertionError, KeyError, RuntimeError, ValueError) as err:  # a damaged file
            raise ValueError(f"could not read {display} from {raw}: {_first_line(err)}") from err

    error: Exception | None = None
    if download:
        try:
            return cls(str(root_path), train=train, transform=transform, download=True)
        except Exception as err:  # no network, blocked mirror, read-only folder, ...
            error = err

    missing = ", ".join(_missing_files(raw))
    how = _what_happened(error)
    if key == "mnist" and fallback:
        _warn_fallback(raw, missing, how, train, stacklevel=stacklevel + 1)  # +1: one call deeper
        return MNISTSample(transform=transform)
    no_sample = " (no offline sample is shipped for FashionMNIST)" if key != "mnist" else ""
    raise FileNotFoundError(
        f"{display} not found at {raw} (missing: {missing}) and {how}{no_sample}. Expected "
        f"under {root_path}: {_expected_files(folder)}. Set PATH_DATASETS (or pass root=) to the "
        f"folder that holds {folder}/raw/, or run with a network and download=True."
    ) from error


def _check_raw_files(raw: Path, train: bool) -> None:
    """The split's two IDX files must be whole (their headers say how long) and agree on the
    number of examples: a ``ValueError`` that names a damaged file, before torchvision reads."""
    prefix = "train" if train else "t10k"
    images, labels = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    n_images, n_labels = _idx_count(images, 3), _idx_count(labels, 1)
    if n_images != n_labels:
        raise ValueError(
            f"corrupt dataset files: {images} holds {n_images} images but {labels} "
            f"{n_labels} labels; replace them with a fresh copy (or delete them to download)"
        )


def _idx_count(path: Path, ndim: int) -> int:
    """The number of examples in the uint8 IDX file ``path`` (``ndim`` 3: 28x28 images, 1:
    labels), read from its header; a ``ValueError`` naming the file when it is damaged."""
    size = 4 * (ndim + 1)
    with path.open("rb") as handle:
        header = handle.read(size)
    dims = [int(d) for d in np.frombuffer(header[4:], dtype=">u4")] if len(header) == size else []
    if not dims or header[:4] != bytes((0, 0, 8, ndim)):
        problem = f"no IDX header of a uint8 array with {ndim} dimension(s)"
    elif dims[1:] != [28, 28][: ndim - 1]:
        problem = f"examples of shape {dims[1:]}, not [28, 28]"
    elif path.stat().st_size != size + math.prod(dims):
        problem = f"{path.stat().st_size} bytes where its header says {size + math.prod(dims)}"
        problem += " (truncated?)"
    else:
        return dims[0]
    raise ValueError(
        f"corrupt dataset file {path}: {problem}; replace it with a fresh copy (or delete it "
        "to download it again)"
    )


def _root_folder(root: str | os.PathLike[str] | None, folder: str) -> Path:
    """:func:`dataset_root`, which must be a folder if it exists."""
    root_path = dataset_root(root)
    if root_path.exists() and not root_path.is_dir():
        raise NotADirectoryError(
            f"dataset root {root_path} exists but is not a folder; pass root= (or set "
            f"PATH_DATASETS to) the folder that holds {folder}/raw/"
        )
    return root_path


def _what_happened(error: Exception | None) -> str:
    """Why the raw files are still missing: the download failed (with ``error``) or none ran."""
    if error is not None:
        return f"the download failed ({_first_line(error)})"
    return "download=False, so nothing was downloaded"


def _expected_files(folder: str) -> str:
    """The raw files torchvision reads for ``folder``, as one string for the messages."""
    return ", ".join(f"{folder}/raw/{f}" for f in _RAW_FILES)


def _warn_fallback(raw: Path, missing: str, how: str, train: bool, stacklevel: int) -> None:
    """The ``UserWarning`` that the shipped MNIST sample stands in for the full set."""
    split_note = (
        " You asked for the test split (train=False): the sample is all there is offline, "
        "so it stands in for the test set too (its images are training images)."
        if not train
        else ""
    )
    warnings.warn(
        f"Full MNIST not found at {raw} (missing: {missing}) and {how}. Using the shipped "
        f"2,000-image sample of MNIST train instead.{split_note} To use the full set, set "
        f"PATH_DATASETS (or pass root=) to a folder holding {_expected_files('MNIST')}, or run "
        "with a network and download=True.",
        UserWarning,
        stacklevel=stacklevel,
    )


def load_dataset(
    name: str,
    train: bool = True,
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    fallback: bool = True,
    transform: Transform | None = None,
) -> Dataset:
    """Load MNIST or FashionMNIST as a map-style dataset of ``(image, label)`` pairs.

    Args:
        name: one of :data:`DATASETS` (``"mnist"``, ``"fashion_mnist"``; case and ``-``/``_``
            do not matter).
        train: the training split if ``True``, else the test split.
        root: the folder that holds ``MNIST/raw/`` or ``FashionMNIST/raw/``; see
            :func:`dataset_root` (argument, else ``$PATH_DATASETS``, else ``data/``).
        download: when the raw files are missing, let torchvision download them into ``root``.
            Any failure (e.g. no network) is caught and leads to the fallback or the error.
        fallback: for MNIST only, when the full set is unavailable, warn (``UserWarning``) and
            return :class:`MNISTSample`, the 2,000 shipped training images, for ``train=False``
            too. With ``fallback=False`` a :class:`FileNotFoundError` is raised instead.
        transform: applied to each PIL image; default :func:`mnist_transform`.

    Returns:
        A ``torch.utils.data.Dataset`` (``torchvision.datasets.MNIST``/``FashionMNIST`` or
        :class:`MNISTSample`) whose items are ``(image, label)``: with the default transform,
        a float32 tensor ``[1, 28, 28]`` in ``[-1, 1]`` and an ``int`` in 0..9. It has ``.data``
        (uint8 ``[N, 28, 28]``) and ``.targets`` (int64 ``[N]``). Full sizes: MNIST 60,000 train
        (10,000 in the project's offline copy) / 10,000 test; FashionMNIST 60,000 / 10,000.

    Raises:
        ValueError: unknown ``name``, or a damaged raw file of the split (truncated, not IDX,
            images and labels of different counts); the message names the file.
        NotADirectoryError: ``root`` exists but is not a folder.
        FileNotFoundError: the data is unavailable and there is no fallback (FashionMNIST, or
            ``fallback=False``); the message names the folder and the expected files.
    """
    return _load(name, train, root, download, fallback, transform, stacklevel=3)


def load_mnist(train: bool = True, **kwargs: Any) -> Dataset:
    """:func:`load_dataset` for ``"mnist"``; keyword arguments are passed on.

    Items are ``(float32 tensor [1, 28, 28] in [-1, 1], int label)``. Falls back to the shipped
    2,000-image sample (with a ``UserWarning``) when the full set is unavailable.
    """
    return _load("mnist", train, **_load_kwargs(kwargs), stacklevel=3)


def mnist_tensors(
    train: bool = True, limit: int | None = None, **kwargs: Any
) -> tuple[Tensor, Tensor]:
    """MNIST as two tensors in one call: ``to_tensors(load_mnist(train, **kwargs), limit)``.

    Returns images float32 ``[N, 1, 28, 28]`` in ``[-1, 1]`` and labels int64 ``[N]`` (the
    first ``limit`` examples; all when ``None``). Keyword arguments go to :func:`load_mnist`
    (``root``, ``download``, ``fallback``, ``transform``): without the full set the shipped
    2,000-image training sample stands in, with a ``UserWarning`` that says so.
    """
    return to_tensors(_load("mnist", train, **_load_kwargs(kwargs), stacklevel=3), limit)


def load_fashion_mnist(train: bool = True, **kwargs: Any) -> Dataset:
    """:func:`load_dataset` for ``"fashion_mnist"``; keyword arguments are passed on.

    Items are ``(float32 tensor [1, 28, 28] in [-1, 1], int label)``. There is no offline
    sample: raises :class:`FileNotFoundError` when the data is unavailable.
    """
    return _load("fashion_mnist", train, **_load_kwargs(kwargs), stacklevel=3)


def _load_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    allowed = {"root": None, "download": True, "fallback": True, "transform": None}
    unknown = set(kwargs) - set(allowed)
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    return {**allowed, **kwargs}


def _is_course_transform(transform: Any) -> bool:
    """True for ``None`` or a ``Compose([ToTensor(), Normalize((0.5,), (0.5,))])``."""
    if transform is None:
        return True
    from torchvision import transforms

    if not isinstance(transform, transforms.Compose) or len(transform.transforms) != 2:
        return False
    to_tensor, normalize = transform.transforms
    return (
        type(to_tensor) is transforms.ToTensor
        and type(normalize) is transforms.Normalize
        and list(np.ravel(normalize.mean)) == [0.5]
        and list(np.ravel(normalize.std)) == [0.5]
    )


def _uint8_to_unit(data: Tensor) -> Tensor:
    # The same float32 operations as ToTensor then Normalize((0.5,), (0.5,)), so the
    # results are bit-identical: x / 255, then (y - 0.5) / 0.5.
    return data.unsqueeze(1).to(torch.float32).div(255).sub(0.5).div(0.5)


def to_tensors(dataset: Dataset, limit: int | None = None) -> tuple[Tensor, Tensor]:
    """Stack a dataset (or its first ``limit`` items) into two tensors.

    Args:
        dataset: a dataset of ``(image, label)`` pairs, e.g. from :func:`load_dataset`.
        limit: keep only the first ``limit`` items (all when ``None`` or larger than the set).

    Returns:
        ``(images, labels)``: images float32 ``[N, 1, 28, 28]`` in ``[-1, 1]``, labels int64
        ``[N]``.

    When the dataset has ``.data`` (uint8 ``[N, 28, 28]``) and ``.targets`` and uses the course
    transform (or none) without a ``target_transform``, the images are computed in one go from
    ``.data`` (bit-identical to the per-item transform); otherwise the dataset is iterated and
    its items (which must then be tensors) are stacked.
    """
    pairs = "a Dataset of (image, label) pairs (e.g. from load_dataset)"
    if isinstance(dataset, str | bytes) or not hasattr(dataset, "__getitem__"):
        raise TypeError(f"dataset must be {pairs}, got {type(dataset).__name__}")
    if limit is not None:
        checks.positive_int("limit", limit, minimum=0)
    n = len(dataset) if limit is None else min(limit, len(dataset))  # type: ignore[arg-type]

    data = getattr(dataset, "data", None)
    targets = getattr(dataset, "targets", None)
    if (
        isinstance(data, Tensor)
        and data.dtype == torch.uint8
        and data.ndim == 3
        and targets is not None
        and len(targets) == len(data)
        and getattr(dataset, "target_transform", None) is None
        and _is_course_transform(getattr(dataset, "transform", None))
    ):
        labels = torch.as_tensor(targets[:n], dtype=torch.int64)
        return _uint8_to_unit(data[:n]), labels.clone()

    images, labels_list = [], []
    for i in range(n):
        item = dataset[i]
        if not (isinstance(item, tuple | list) and len(item) == 2):
            raise TypeError(f"dataset must be {pairs}; item {i} is {type(item).__name__}")
        image, label = item
        if not isinstance(image, Tensor):
            raise TypeError(
                f"item {i} is a {type(image).__name__}, not a tensor; give the dataset a "
                "transform that returns tensors, e.g. mnist_transform()"
            )
        images.append(image.to(torch.float32))
        labels_list.append(int(label))
    if not images:
        return torch.empty(0, 1, 28, 28), torch.empty(0, dtype=torch.int64)
    return torch.stack(images), torch.tensor(labels_list, dtype=torch.int64)
