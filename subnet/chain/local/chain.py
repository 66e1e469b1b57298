"""`LocalChain`: the state machine's shell — block production, extrinsic application, receipts.

Two ways to make blocks:
* instant seal (tests, benchmarks, `dmoe chain --instant`): each submission seals its own block
  at once; `produce_blocks(n)` makes empty ones (and runs epochs when due);
* timer (`start(block_time)`): a block every `block_time` seconds; submissions wait in the pool
  and are answered once the block that includes them is committed.

Each block runs the coinbase/epochs first (subtensor's on_initialize), then its extrinsics, then
commits everything in one SQLite transaction. All state access goes through `self.lock` so the
SDK's blocking facade (its own loop in a thread) can share an in-process chain.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bittensor_core import Keypair

from subnet.chain.local import accounts, admin, staking, subnets, weights
from subnet.chain.local.calls import ComposedCall, DispatchError, error_docs, event
from subnet.chain.local.epoch import on_block
from subnet.chain.local.genesis import Genesis
from subnet.chain.local.hparams import RAO, SETTERS
from subnet.chain.local.signing import Envelope, SubmissionRejected, Verifier
from subnet.chain.local.state import ChainState
from subnet.chain.local.store import Store

log = logging.getLogger(__name__)

DB_NAME = "chain.sqlite"
RECEIPTS_KEPT = 20_000
PENDING_INNER_KEPT = 4_096
MEV_KEY = bytes(1152) + hashlib.blake2b(b"dmoe-localchain-mev", digest_size=32).digest()


@dataclass
class _Pending:
    env: Envelope
    ext_hash: str
    future: asyncio.Future | None


class LocalChain:
    def __init__(self, genesis: Genesis, store: Store, state: ChainState):
        self.genesis = genesis
        self.store = store
        self.state = state
        self.genesis_hash = genesis.genesis_hash()
        self.sudo_key = Keypair.create_from_uri(genesis.sudo_uri).ss58_address
        self.verifier = Verifier(self.genesis_hash)
        self.lock = threading.RLock()
        self.receipts: OrderedDict[str, tuple[int, dict]] = OrderedDict()
        self.pending_inner: OrderedDict[tuple[str, int], tuple[ComposedCall, str]] = OrderedDict()
        self.last_epochs: list[dict] = []
        self._pool: list[_Pending] = []
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._timer: asyncio.Task | None = None
        self.instant = True

    # -- construction ---------------------------------------------------------------------
    @classmethod
    def create(
        cls, genesis: Genesis | None = None, data_dir: Path | str | None = None
    ) -> LocalChain:
        """Open (or initialise) a chain. `data_dir=None`: in-memory, for tests and tools."""
        path = None
        if data_dir is not None:
            Path(data_dir).mkdir(parents=True, exist_ok=True)
            path = Path(data_dir) / DB_NAME
        store = Store(path)
        stored = store.get_meta("genesis")
        if stored is not None:
            # A restart keeps the genesis it was created with; a different one is an error.
            if genesis is not None and genesis.to_dict() != stored:
                log.warning("data dir %s has its own genesis; ignoring the one given", data_dir)
            genesis = Genesis.from_stored(stored)
            chain = cls(genesis, store, store.load())
            log.info("local chain resumed at block %d from %s", chain.block, path)
            return chain
        genesis = genesis or Genesis.load()
        state = ChainState()
        chain = cls(genesis, store, state)
        faucet = Keypair.create_from_uri(genesis.faucet_uri).ss58_address
        state.add_balance(faucet, genesis.faucet_balance_rao)
        for ss58, rao in genesis.balances.items():
            if ss58 != faucet:
                state.add_balance(ss58, rao)
        store.put_meta("genesis", genesis.to_dict())
        store.commit_block(state, 0, chain.hash_of(0), int(time.time() * 1000), [])
        return chain

    def close(self) -> None:
        with self.lock:
            self.store.close()

    # -- blocks ---------------------------------------------------------------------------
    @property
    def block(self) -> int:
        return self.state.block

    def hash_of(self, number: int) -> str:
        digest = hashlib.blake2b(f"{self.genesis_hash}:{number}".encode(), digest_size=32)
        return "0x" + digest.hexdigest()

    def number_of(self, block_hash: str | None) -> int | None:
        if block_hash is None:
            return self.block
        for n in range(self.block, max(self.block - 256, -1), -1):  # recent blocks: no I/O
            if self.hash_of(n) == block_hash:
                return n
        with self.lock:
            return self.store.block_number_of(block_hash)

    def produce_blocks(self, n: int = 1) -> int:
        """Seal `n` blocks now (empty unless submissions are pooled). Returns the new height."""
        for _ in range(n):
            self._seal()
        return self.block

    def fund(self, ss58: str, tao: float) -> None:
        """Credit `tao` to an account directly (tests and tools); committed in its own block."""
        with self.lock:
            self.state.add_balance(ss58, int(tao * RAO))
        self._seal()

    def _seal(self) -> None:
        with self.lock:
            pool, self._pool = self._pool, []
            state = self.state
            state.block += 1
            number = state.block
            events: list[dict] = []
            self.last_epochs = on_block(state, self.genesis)
            for summary in self.last_epochs:
                events.append(event("SubtensorModule", "EpochRun", summary))
            answers = []
            index = 1  # extrinsic 0 is the timestamp inherent on a real chain
            for item in pool:
                result, used = self._apply(item.env, item.ext_hash, number, index, events)
                index += used
                answers.append((item.future, result))
            self.store.commit_block(
                state, number, self.hash_of(number), int(time.time() * 1000), events
            )
        for future, result in answers:
            if future is not None and not future.done():
                future.get_loop().call_soon_threadsafe(_resolve, future, result)
        self._notify()

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future, self.block)

    async def wait_block(self, after: int) -> int:
        """Wait until the head is past `after`; returns the head."""
        while self.block <= after:
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            with self.lock:
                if self.block > after:
                    break
                self._waiters.append((loop, future))
            await future
        return self.block

    # -- timer mode -------------------------------------------------------------------------
    def start(self, block_time: float | None = None, *, instant: bool = False) -> None:
        """Produce blocks every `block_time` seconds (default: the genesis block time).

        `instant=True` keeps sealing a block per submission as well (benchmarks)."""
        self.instant = instant
        interval = self.genesis.block_time if block_time is None else block_time
        self._timer = asyncio.get_running_loop().create_task(self._tick(interval))

    async def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            try:
                await self._timer
            except asyncio.CancelledError:
                pass
            self._timer = None

    async def _tick(self, interval: float) -> None:
        next_at = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            self._seal()
            if time.monotonic() > next_at + interval:  # fell behind (slow epoch): don't burst
                next_at = time.monotonic() + interval

    # -- submissions ------------------------------------------------------------------------
    def next_index(self, address: str) -> int:
        """Next nonce, counting pooled submissions (what `account_next_index` returns)."""
        with self.lock:
            pooled = sum(1 for p in self._pool if p.env.address == address)
            return self.state.nonces.get(address, 0) + pooled

    async def submit(self, env: Envelope, *, wait: bool = True) -> dict:
        """Verify and include a signed extrinsic; the receipt once its block is committed."""
        with self.lock:
            ext_hash = self.verifier.verify(env)
            if env.nonce is not None:
                expected = self.next_index(env.address)
                if env.nonce != expected:
                    message = (
                        "Transaction is outdated"
                        if env.nonce < expected
                        else "Transaction is future"
                    )
                    return {"success": False, "message": message, "error": None}
            future = asyncio.get_running_loop().create_future() if not self.instant else None
            self._pool.append(_Pending(env, ext_hash, future))
        if self.instant:
            self._seal()
            result = self.receipts[ext_hash][1]
        elif not wait:
            return {"success": True, "message": "Submitted (not waiting)."}
        else:
            result = await future
        return result

    def register_inner(self, env: Envelope) -> str:
        """An MEV-shielded inner extrinsic (signed at nonce+1): kept until its carrier lands.

        The chain cannot decrypt the carrier (no ML-KEM secret), so the client announces the
        signed inner call; it is verified now and executed in the carrier's block.
        """
        with self.lock:
            ext_hash = self.verifier.verify(env)
            if env.nonce is None:
                raise SubmissionRejected("a shielded inner extrinsic needs an explicit nonce")
            self.pending_inner[(env.address, env.nonce)] = (env.call, ext_hash)
            while len(self.pending_inner) > PENDING_INNER_KEPT:
                self.pending_inner.popitem(last=False)
            return ext_hash

    def receipt(self, ext_hash: str, block_hash: str) -> dict | None:
        found = self.receipts.get(ext_hash)
        if found is None or self.hash_of(found[0]) != block_hash:
            return None
        return found[1]

    def _apply(
        self, env: Envelope, ext_hash: str, number: int, index: int, events: list
    ) -> tuple[dict, int]:
        """Apply one extrinsic at `index` of block `number`; returns (receipt, indices used)."""
        state, signer, call = self.state, env.address, env.call
        expected = state.nonces.get(signer, 0)
        if env.nonce is not None and env.nonce != expected:
            return {"success": False, "message": "Transaction is outdated", "error": None}, 0
        state.nonces[signer] = expected + 1
        state.touch("account", signer)
        fee = accounts.charge_fee(
            state, signer, accounts.fee_for(call.module, call.function, self.genesis)
        )
        result = self._dispatch_recorded(signer, call, ext_hash, number, index, fee, events)
        used = 1
        if result["success"] and (call.module, call.function) == ("MevShield", "submit_encrypted"):
            inner = self.pending_inner.pop((signer, expected + 1), None)
            if inner is not None:
                state.nonces[signer] = expected + 2
                self._dispatch_recorded(signer, inner[0], inner[1], number, index + 1, 0, events)
                used = 2
        return result, used

    def _dispatch_recorded(
        self, signer: str, call: ComposedCall, ext_hash: str, number: int, index: int, fee: int,
        events: list,
    ) -> dict:  # fmt: skip
        own: list[dict] = []
        error = None
        try:
            own.extend(self.dispatch(signer, call, False))
        except DispatchError as err:
            error = err.name
            log.debug("extrinsic %s.%s failed: %s", call.module, call.function, err)
        except (KeyError, TypeError, ValueError) as err:  # malformed params from a client
            error = "CallFiltered" if isinstance(err, KeyError) else "InvalidValue"
            log.info("extrinsic %s.%s rejected: %r", call.module, call.function, err)
        own.append(event("TransactionPayment", "TransactionFeePaid",
                         {"who": signer, "actual_fee": fee, "tip": 0}))  # fmt: skip
        own.append(event("System", "ExtrinsicSuccess" if error is None else "ExtrinsicFailed", {}))
        for e in own:
            e["extrinsic_idx"] = index
            e["phase"] = "ApplyExtrinsic"
        events.extend(own)
        result = {
            "success": error is None,
            "message": "Success" if error is None else error_docs(error),
            "error": error,
            "block_hash": self.hash_of(number),
            "extrinsic_id": f"{number}-{index:04d}",
            "fee": fee,
            "events": own,
        }
        self.receipts[ext_hash] = (number, result)
        while len(self.receipts) > RECEIPTS_KEPT:
            self.receipts.popitem(last=False)
        return result

    # -- dispatch ---------------------------------------------------------------------------
    def dispatch(self, signer: str, call: ComposedCall, root: bool) -> list[dict]:
        m, f, p = call.module, call.function, call.params
        s, g = self.state, self.genesis
        if m == "SubtensorModule":
            table = {
                "register_network": lambda: subnets.register_network(s, g, signer, p),
                "start_call": lambda: subnets.start_call(s, g, signer, p),
                "burned_register": lambda: subnets.burned_register(s, g, signer, p),
                "serve_axon": lambda: subnets.serve_axon(s, signer, p),
                "add_stake": lambda: staking.add_stake(s, g, signer, p),
                "add_stake_limit": lambda: staking.add_stake_limit(s, g, signer, p),
                "remove_stake": lambda: staking.remove_stake(s, g, signer, p),
                "set_weights": lambda: weights.set_weights(s, signer, p),
                "set_mechanism_weights": lambda: weights.set_weights(s, signer, p),
            }
            if f in table:
                return table[f]()
        if m == "Balances" and f in ("transfer_keep_alive", "transfer_allow_death"):
            return accounts.transfer(s, g, signer, p, keep_alive=f == "transfer_keep_alive")
        if m == "Commitments" and f == "set_commitment":
            return subnets.set_commitment(s, signer, p)
        if m == "AdminUtils" and f in SETTERS:
            return admin.set_hparam(s, signer, f, p, root=root)
        if m == "AdminUtils" and f == "sudo_set_alpha_values":
            return admin.set_alpha_values(s, signer, p, root=root)
        if m == "Sudo" and f == "sudo":
            return admin.sudo(self.sudo_key, signer, p, self.dispatch)
        if m == "MevShield" and f == "submit_encrypted":
            return [event("MevShield", "EncryptedSubmitted", {"who": signer})]
        raise DispatchError("CallFiltered", f"{m}.{f} is not modelled by the local chain")

    def estimate_fee(self, call: ComposedCall) -> int:
        return accounts.fee_for(call.module, call.function, self.genesis)

    def events_at(self, number: int) -> list[dict]:
        with self.lock:
            row = self.store.block_row(number)
        return row[2] if row else []

    def timestamp_ms(self, number: int) -> int | None:
        with self.lock:
            row = self.store.block_row(number)
        return row[1] if row else None

    def mev_key(self) -> bytes:
        return MEV_KEY


def _resolve(future: asyncio.Future, value: Any) -> None:
    if not future.done():
        future.set_result(value)
