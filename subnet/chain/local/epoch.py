"""Per-block coinbase and per-tempo epochs: the ONE place the chain calls `subnet.consensus`.

Every block, each started subnet accrues `alpha_emission_rao` of pending alpha. When
`block - LastEpochBlock >= tempo` (subtensor's stateful schedule), the pending alpha is split by
`coinbase_split` (owner cut, miners, validators), the epoch runs on the subnet's stored state, and
its results are written back: incentive, dividends, emission, consensus, trust, validator trust,
rank, pruning score, active, permits and bonds. Emission is staked back to each hotkey (for its
owning coldkey); miner incentive earned by the owner's own hotkeys is burned, as on subtensor.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from subnet.chain.local.genesis import Genesis
from subnet.chain.local.state import ChainState, Subnet
from subnet.consensus import SubnetState, YumaParams, coinbase_split, epoch

log = logging.getLogger(__name__)

OWNER_CUT_U16 = 11796  # SubnetOwnerCut, ~18%


def yuma_params(hp: dict) -> YumaParams:
    """The epoch's hyperparameters from a subnet's raw hyperparameter dict."""
    return YumaParams(
        kappa=int(hp["kappa"]),
        bonds_moving_avg=int(hp["bonds_moving_avg"]),
        bonds_penalty=int(hp["bonds_penalty"]),
        yuma3=bool(hp["yuma3_enabled"]),
        liquid_alpha=bool(hp["liquid_alpha_enabled"]),
        alpha_low=int(hp["alpha_low"]),
        alpha_high=int(hp["alpha_high"]),
        alpha_sigmoid_steepness=int(hp["alpha_sigmoid_steepness"]),
        max_allowed_validators=int(hp["max_validators"]),
        activity_cutoff=int(hp["activity_cutoff"]),
        tempo=int(hp["tempo"]),
        stake_threshold=int(hp["weights_min_stake"]),
    )


def subnet_state(state: ChainState, sn: Subnet, block: int) -> SubnetState:
    """The epoch's inputs exactly as the chain stores them at `block`."""
    neurons = sn.neurons
    return SubnetState(
        n=len(neurons),
        stake=np.array([state.alpha_of(sn.netuid, x.hotkey) for x in neurons], dtype=np.float64),
        weights=[x.weights for x in neurons],
        bonds=list(sn.out.bonds),
        block_at_registration=[x.registered_at for x in neurons],
        last_update=[x.last_update for x in neurons],
        validator_permit=sn.out.permit.tolist(),
        current_block=block,
        last_mechanism_step_block=sn.last_epoch_block,
        owner_uid=sn.uids.get(sn.owner_hotkey),
    )


def epoch_due(sn: Subnet, block: int) -> bool:
    tempo = int(sn.hparams["tempo"])
    return (
        sn.first_emission_block is not None and tempo > 0 and block - sn.last_epoch_block >= tempo
    )


def on_block(state: ChainState, genesis: Genesis) -> list[dict]:
    """Coinbase for the block `state.block`, then the epochs that are due. Returns summaries."""
    summaries = []
    for sn in state.subnets.values():
        if sn.first_emission_block is None or state.block < sn.first_emission_block:
            continue
        sn.pending_emission += genesis.alpha_emission_rao
        state.touch("subnet", sn.netuid)
        if epoch_due(sn, state.block):
            summaries.append(run_epoch(state, sn))
    return summaries


def run_epoch(state: ChainState, sn: Subnet) -> dict:
    started = time.perf_counter()
    block, hp = state.block, sn.hparams
    split = coinbase_split(
        sn.pending_emission, owner_cut_u16=OWNER_CUT_U16 if hp["owner_cut_enabled"] else 0
    )
    result = epoch(subnet_state(state, sn, block), yuma_params(hp), split.epoch_emission)
    out = sn.out
    out.u16["rank"] = np.asarray(result.ranks_u16, np.int64)
    out.u16["trust"] = np.asarray(result.trust_u16, np.int64)
    out.u16["consensus"] = np.asarray(result.consensus_u16, np.int64)
    out.u16["incentive"] = np.asarray(result.incentive_u16, np.int64)
    out.u16["dividends"] = np.asarray(result.dividends_u16, np.int64)
    out.u16["validator_trust"] = np.asarray(result.validator_trust_u16, np.int64)
    out.u16["pruning"] = np.asarray(result.pruning_scores_u16, np.int64)
    out.emission = np.asarray(result.emission, np.int64)
    out.permit = np.asarray(result.new_validator_permits, bool)
    out.active = np.asarray(result.active, bool)
    out.bonds = result.bonds_csr.to_lists()  # CSR arrays to [(uid, u16)] rows in one pass
    burned = 0
    for uid, neuron in enumerate(sn.neurons):
        server, validator = int(result.server_emission[uid]), int(result.validator_emission[uid])
        if server and neuron.coldkey == sn.owner_coldkey:
            burned += server  # subtensor burns miner incentive paid to the owner's hotkeys
            server = 0
        if server + validator:
            state.add_stake(neuron.hotkey, neuron.coldkey, sn.netuid, server + validator)
    if split.owner:
        state.add_stake(sn.owner_hotkey, sn.owner_coldkey, sn.netuid, split.owner)
    sn.pending_emission = 0
    sn.last_epoch_block = block
    sn.epoch_index += 1
    state.touch("subnet", sn.netuid)
    state.touch("epoch", sn.netuid)
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.debug(
        "epoch netuid=%d block=%d n=%d in %.1f ms", sn.netuid, block, len(sn.neurons), elapsed_ms
    )
    return {
        "netuid": sn.netuid,
        "block": block,
        "n": len(sn.neurons),
        "emission": split.total,
        "burned": burned,
        "ms": elapsed_ms,
    }
