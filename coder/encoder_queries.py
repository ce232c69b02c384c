"""The fine-tuned encoders part of the store: ONNX bytes kept once per name."""

from __future__ import annotations

import json
from typing import Any

from coder.project_file import StorePart


class EncoderQueries(StorePart):
    """Fine-tuned sentence encoders (a part of :class:`coder.store.Store`)."""

    def save_encoder(
        self,
        name: str,
        onnx: bytes,
        *,
        sha256: str,
        quantized: bool,
        base: str,
        params: dict[str, Any],
        metrics: dict[str, Any],
    ) -> None:
        """Store a fine-tuned encoder's ONNX bytes (kept once per name: rows never change)."""
        with self.db.conn:
            self.db.table("encoders").insert(
                {
                    "name": name,
                    "base": base,
                    "sha256": sha256,
                    "quantized": int(quantized),
                    "params": json.dumps(params, sort_keys=True, default=str),
                    "metrics": json.dumps(metrics, sort_keys=True, default=str),
                    "created_at": self._now(),
                    "onnx": onnx,
                },
                ignore=True,
            )

    def load_encoder(self, name: str) -> tuple[bytes, dict[str, Any]] | None:
        """(ONNX bytes, row without them) of a stored encoder, or None."""
        rows = list(self.db.query("select * from encoders where name = ?", [name]))
        if not rows:
            return None
        row = dict(rows[0])
        return bytes(row.pop("onnx")), row

    def latest_encoder_name(self) -> str | None:
        """The most recently stored fine-tuned encoder (the project's encoder), or None."""
        row = self.db.execute(
            "select name from encoders order by created_at desc, rowid desc limit 1"
        ).fetchone()
        return str(row[0]) if row else None

    def project_encoder_name(self) -> str | None:
        """The sentence encoder the project uses when no trained state names one.

        The encoder of the latest trained local model whose state is kept, so that
        ``coder train --default-encoder`` leads back from a fine-tuned encoder and
        ``coder train --fine-tune`` leads to one; without a trained model, the latest
        fine-tuned encoder. None means the shipped default.
        """
        if "models" in self.db.table_names():
            row = self.db.execute(
                "select json_extract(params, '$.encoder') from models "
                "where backend = 'local' and blob is not null and json_valid(params) "
                "order by id desc limit 1"
            ).fetchone()
            if row is not None and row[0]:
                return str(row[0])
        return self.latest_encoder_name()

    def encoders(self) -> list[dict[str, Any]]:
        """Stored fine-tuned encoders (without their bytes), oldest first."""
        return [
            dict(row)
            for row in self.db.query(
                "select name, base, sha256, quantized, params, metrics, created_at, "
                "length(onnx) as size from encoders order by created_at, rowid"
            )
        ]
