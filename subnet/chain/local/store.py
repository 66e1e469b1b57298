"""SQLite persistence of the local chain: one transaction per block, WAL mode.

`commit_block` writes the block row and every entity the block touched (see `ChainState.touch`)
in one transaction; a submission is acknowledged only after that commit returns, so a chain
killed with SIGKILL restarts at its last committed block with nothing acknowledged lost. WAL
with `synchronous=NORMAL` is durable against process death (not against power loss).
`path=None` keeps the database in memory (tests).
"""

from __future__ import annotations

import io
import json
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np

from subnet.chain.local.state import U16_OUTPUTS, ChainState, EpochOutputs, Neuron, Subnet

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL, events TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS blocks_hash ON blocks(hash);
CREATE TABLE IF NOT EXISTS accounts (ss58 TEXT PRIMARY KEY, free INTEGER NOT NULL,
    nonce INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS owners (hotkey TEXT PRIMARY KEY, coldkey TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stake (hotkey TEXT, coldkey TEXT, netuid INTEGER, alpha INTEGER,
    PRIMARY KEY (hotkey, coldkey, netuid));
CREATE TABLE IF NOT EXISTS subnets (netuid INTEGER PRIMARY KEY, meta TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS neurons (netuid INTEGER, uid INTEGER, data TEXT NOT NULL,
    PRIMARY KEY (netuid, uid));
CREATE TABLE IF NOT EXISTS epochs (netuid INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""


class Store:
    def __init__(self, path: Path | None):
        self.path = path
        target = ":memory:" if path is None else str(path)
        # isolation_level=None: transactions are explicit (BEGIN ... COMMIT per block).
        self.db = sqlite3.connect(target, isolation_level=None, check_same_thread=False)
        if path is not None:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- meta ---------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    # -- blocks -------------------------------------------------------------------------------
    def commit_block(
        self, state: ChainState, number: int, block_hash: str, ts_ms: int, events: list
    ) -> None:
        """The block's one transaction: its row plus everything it touched."""
        db = self.db
        db.execute("BEGIN")
        try:
            db.execute(
                "INSERT OR REPLACE INTO blocks VALUES (?, ?, ?, ?)",
                (number, block_hash, ts_ms, json.dumps(events)),
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('block', ?)", (json.dumps(number),))
            for kind, key in sorted(state.dirty, key=repr):
                self._write(state, kind, key)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        state.dirty.clear()

    def _write(self, state: ChainState, kind: str, key: Any) -> None:
        db = self.db
        if kind == "account":
            db.execute(
                "INSERT OR REPLACE INTO accounts VALUES (?, ?, ?)",
                (key, state.balances.get(key, 0), state.nonces.get(key, 0)),
            )
        elif kind == "owner":
            db.execute("INSERT OR REPLACE INTO owners VALUES (?, ?)", (key, state.owners[key]))
        elif kind == "stake":
            alpha = state.stake.get(key, 0)
            if alpha:
                db.execute("INSERT OR REPLACE INTO stake VALUES (?, ?, ?, ?)", (*key, alpha))
            else:
                db.execute(
                    "DELETE FROM stake WHERE hotkey=? AND coldkey=? AND netuid=?", tuple(key)
                )
        elif kind == "subnet":
            sn = state.subnets[key]
            db.execute("INSERT OR REPLACE INTO subnets VALUES (?, ?)", (key, json.dumps(sn.meta())))
        elif kind == "neuron":
            netuid, uid = key
            neuron = state.subnets[netuid].neurons[uid]
            db.execute(
                "INSERT OR REPLACE INTO neurons VALUES (?, ?, ?)",
                (netuid, uid, json.dumps(neuron.to_dict())),
            )
        elif kind == "epoch":
            blob = _pack_outputs(state.subnets[key].out)
            db.execute("INSERT OR REPLACE INTO epochs VALUES (?, ?)", (key, blob))
        else:
            raise ValueError(f"unknown state kind {kind!r}")

    def block_row(self, number: int) -> tuple[str, int, list] | None:
        row = self.db.execute(
            "SELECT hash, timestamp_ms, events FROM blocks WHERE number=?", (number,)
        ).fetchone()
        return (row[0], row[1], json.loads(row[2])) if row else None

    def block_number_of(self, block_hash: str) -> int | None:
        row = self.db.execute("SELECT number FROM blocks WHERE hash=?", (block_hash,)).fetchone()
        return row[0] if row else None

    # -- load ---------------------------------------------------------------------------------
    def load(self) -> ChainState:
        db = self.db
        state = ChainState(block=int(self.get_meta("block") or 0))
        for ss58, free, nonce in db.execute("SELECT ss58, free, nonce FROM accounts"):
            if free:  # hotkeys that only sign (nonce rows) hold no balance entry live either
                state.balances[ss58] = free
            if nonce:
                state.nonces[ss58] = nonce
        state.owners.update(db.execute("SELECT hotkey, coldkey FROM owners"))
        for hotkey, coldkey, netuid, alpha in db.execute("SELECT * FROM stake"):
            state.add_stake(hotkey, coldkey, netuid, alpha)
        for netuid, meta in db.execute("SELECT netuid, meta FROM subnets"):
            state.subnets[netuid] = Subnet(**json.loads(meta))
        for netuid, uid, data in db.execute("SELECT * FROM neurons ORDER BY netuid, uid"):
            sn = state.subnets[netuid]
            assert uid == len(sn.neurons) or uid < len(sn.neurons), "neuron rows out of order"
            neuron = Neuron.from_dict(json.loads(data))
            if uid < len(sn.neurons):
                sn.neurons[uid] = neuron
            else:
                sn.neurons.append(neuron)
            sn.uids[neuron.hotkey] = uid
        for netuid, blob in db.execute("SELECT netuid, data FROM epochs"):
            state.subnets[netuid].out = _unpack_outputs(blob)
        for sn in state.subnets.values():
            while len(sn.out.emission) < len(sn.neurons):
                sn.out.grow()
        state.dirty.clear()
        return state


def _pack_outputs(out: EpochOutputs) -> bytes:
    """Per-uid arrays plus bonds as CSR arrays (fast for 4096 uids, unlike JSON)."""
    ptr = np.cumsum([0] + [len(row) for row in out.bonds]).astype(np.int64)
    flat = [pair for row in out.bonds for pair in row]
    cols = np.array([c for c, _ in flat], np.int64)
    vals = np.array([v for _, v in flat], np.int64)
    buf = io.BytesIO()
    np.savez(
        buf,
        emission=out.emission,
        permit=out.permit,
        active=out.active,
        bond_ptr=ptr,
        bond_cols=cols,
        bond_vals=vals,
        **{f"u16_{k}": out.u16[k] for k in U16_OUTPUTS},
    )
    return buf.getvalue()


def _unpack_outputs(blob: bytes) -> EpochOutputs:
    data = np.load(io.BytesIO(blob))
    ptr, cols, vals = data["bond_ptr"], data["bond_cols"], data["bond_vals"]
    bonds = [
        list(zip(cols[a:b].tolist(), vals[a:b].tolist(), strict=True))
        for a, b in zip(ptr[:-1], ptr[1:], strict=True)
    ]
    return EpochOutputs(
        u16={k: data[f"u16_{k}"] for k in U16_OUTPUTS},
        emission=data["emission"],
        permit=data["permit"],
        active=data["active"],
        bonds=bonds,
    )
