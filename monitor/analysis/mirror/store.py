"""Hidden states on disk, so probes and plots rerun without a forward pass.

Layout of an output directory::

    DIR/index.jsonl          one row per trajectory: its name, source, digest, model,
                             layers and steps (the order of the array's axes), file
    DIR/states/<key>.npz     ``hidden``: float16 [steps, layers, hidden size]

``key`` hashes the model, the trajectory's digest, the layers and the window: the same
trajectory read by the same model is found again (the cache), an edited one is not.
(trajectory, step, layer) -> ``states[key]["hidden"][steps.index(step), layers.index(layer)]``.
"""

import hashlib
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import orjson

INDEX = "index.jsonl"


@dataclass(frozen=True, slots=True)
class Record:
    trajectory: str  # file name, the key of labels.tsv
    source: str
    digest: str
    benchmark: str
    model: str
    layers: list[int]
    steps: list[int]
    key: str
    resets: list[int] = field(default_factory=list)
    reminders: list[int] = field(default_factory=list)
    seconds: float = 0.0
    passes: int = 1

    @property
    def file(self) -> str:
        return f"states/{self.key}.npz"


def cache_key(model: str, digest: str, layers: list[int], window: int) -> str:
    text = f"{model}|{digest}|{','.join(map(str, layers))}|{window}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class MirrorStore:
    """Reads and writes one output directory (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def has(self, key: str) -> bool:
        return (self.root / "states" / f"{key}.npz").is_file()

    def save(self, record: Record, hidden: np.ndarray) -> None:
        expected = (len(record.steps), len(record.layers))
        if hidden.shape[:2] != expected:
            raise ValueError(f"hidden states {hidden.shape} do not match {expected}")
        (self.root / "states").mkdir(parents=True, exist_ok=True)
        path = self.root / record.file
        tmp = path.with_suffix(".tmp.npz")
        np.savez(
            tmp,
            hidden=hidden.astype(np.float16),
            steps=np.array(record.steps),
            layers=np.array(record.layers),
        )
        tmp.replace(path)
        self.add(record)

    def add(self, record: Record) -> None:
        """Index ``record`` (a cached one too): the latest row of a trajectory wins."""
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / INDEX).open("ab") as f:
            f.write(orjson.dumps(asdict(record)) + b"\n")

    def records(self) -> list[Record]:
        path = self.root / INDEX
        if not path.is_file():
            return []
        latest: dict[tuple[str, str], Record] = {}
        for no, line in enumerate(path.read_bytes().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = Record(**orjson.loads(line))
            except (orjson.JSONDecodeError, TypeError) as exc:
                raise ValueError(f"{path}: line {no}: not an index row: {exc}") from None
            latest[(record.trajectory, record.model)] = record
        return list(latest.values())

    def hidden(self, record: Record) -> np.ndarray:
        with np.load(self.root / record.file) as data:
            return data["hidden"]

    def lookup(self, record: Record, step: int, layer: int) -> np.ndarray:
        return self.hidden(record)[record.steps.index(step), record.layers.index(layer)]
