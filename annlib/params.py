"""Search knobs of a quantized index, as one value (tuned, stored, applied)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SearchParams:
    """Search knobs of a quantized index."""
    leaves_to_search: int
    pre_reorder_num_neighbors: int
    final_num_neighbors: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "SearchParams":
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) != {"leaves_to_search", "pre_reorder_num_neighbors",
                                                        "final_num_neighbors"}:
            raise ValueError("expected an object with leaves_to_search, pre_reorder_num_neighbors, "
                             "final_num_neighbors")
        values = {key: data[key] for key in data}
        if not all(type(v) is int and v >= 1 for v in values.values()):
            raise ValueError("every search parameter must be a positive integer")
        return cls(**values)
