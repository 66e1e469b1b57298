"""Runtime APIs of the local chain: the metagraph, hyperparameters, neurons and the swap quotes.

`get_metagraph` follows subtensor's `Metagraph<AccountId>` struct (rpc_info/metagraph.rs) with
the keys the SDK indexes; per-uid vectors are built from numpy arrays, which keeps a 4096-uid
metagraph in a few milliseconds.
"""

from __future__ import annotations

from typing import Any

from subnet.chain.local.genesis import Genesis
from subnet.chain.local.hparams import v3_list
from subnet.chain.local.reads import UnknownItem
from subnet.chain.local.staking import price_rao, sim_swap_alpha_for_tao, sim_swap_tao_for_alpha
from subnet.chain.local.state import EMPTY_AXON, ChainState, Subnet

I96F32_ONE = 2**32
_HP_IN_METAGRAPH = (
    "rho", "kappa", "min_allowed_weights", "max_weights_limit", "weights_rate_limit",
    "activity_cutoff", "max_validators", "immunity_period", "min_difficulty", "max_difficulty",
    "min_burn", "max_burn", "adjustment_alpha", "adjustment_interval", "target_regs_per_interval",
    "max_regs_per_block", "serving_rate_limit", "commit_reveal_weights_enabled",
    "commit_reveal_period", "liquid_alpha_enabled", "alpha_high", "alpha_low",
    "bonds_moving_avg", "difficulty",
)  # fmt: skip


def runtime_call(state: ChainState, genesis: Genesis, api: str, method: str, params: Any) -> Any:
    p = params if isinstance(params, dict) else list(params or [])

    def subnet() -> Subnet | None:
        key = p.get("netuid") if isinstance(p, dict) else (p[0] if p else None)
        return state.subnet(key)

    key = (api, method)
    if key == ("SubnetInfoRuntimeApi", "get_metagraph"):
        sn = subnet()
        return metagraph(state, sn) if sn else None
    if key in (
        ("SubnetInfoRuntimeApi", "get_subnet_hyperparams_v3"),
        ("SubnetInfoRuntimeApi", "get_subnet_hyperparams_v2"),
    ):
        sn = subnet()
        return v3_list(sn.hparams, active=sn.first_emission_block is not None) if sn else None
    if key == ("SubnetInfoRuntimeApi", "get_next_epoch_start_block"):
        sn = subnet()
        if sn is None:
            return None
        return sn.last_epoch_block + int(sn.hparams["tempo"])
    if key == ("NeuronInfoRuntimeApi", "get_neurons_lite"):
        sn = subnet()
        return [neuron_lite(state, sn, uid) for uid in range(len(sn.neurons))] if sn else []
    if key == ("NeuronInfoRuntimeApi", "get_neuron_lite"):
        sn = subnet()
        uid = int(p[1]) if len(p) > 1 else -1
        return neuron_lite(state, sn, uid) if sn and 0 <= uid < len(sn.neurons) else None
    if key == ("SwapRuntimeApi", "current_alpha_price"):
        sn = subnet()
        return price_rao(sn) if sn else None
    if key == ("SwapRuntimeApi", "sim_swap_tao_for_alpha"):
        sn = subnet()
        return sim_swap_tao_for_alpha(sn, int(p["tao"])) if sn else None
    if key == ("SwapRuntimeApi", "sim_swap_alpha_for_tao"):
        sn = subnet()
        return sim_swap_alpha_for_tao(sn, int(p["alpha"])) if sn else None
    if key == ("SubnetRegistrationRuntimeApi", "get_network_registration_cost"):
        return genesis.network_lock_rao
    if key == ("StakeInfoRuntimeApi", "get_stake_info_for_hotkey_coldkey_netuid"):
        hotkey, coldkey, netuid = p
        amount = state.stake.get((str(hotkey), str(coldkey), int(netuid)), 0)
        if not amount:
            return None
        return {
            "hotkey": hotkey,
            "coldkey": coldkey,
            "netuid": int(netuid),
            "stake": amount,
            "locked": 0,
            "emission": 0,
            "tao_emission": 0,
            "drain": 0,
            "is_registered": True,
        }
    if key == ("StakeInfoRuntimeApi", "get_stake_info_for_coldkey"):
        coldkey = str(p[0])
        return [
            {"hotkey": hk, "coldkey": ck, "netuid": n, "stake": a, "locked": 0, "emission": 0,
             "tao_emission": 0, "drain": 0, "is_registered": True}
            for (hk, ck, n), a in state.stake.items()
            if ck == coldkey and a
        ]  # fmt: skip
    raise UnknownItem(f"runtime {api}.{method}")


def metagraph(state: ChainState, sn: Subnet) -> dict:
    hp, ns, out = sn.hparams, sn.neurons, sn.out
    alpha = [state.alpha_of(sn.netuid, x.hotkey) for x in ns]
    u16 = {k: v.tolist() for k, v in out.u16.items()}
    return {
        "netuid": sn.netuid,
        "name": list(sn.name.encode()),
        "symbol": list(sn.symbol.encode()),
        "identity": None,
        "network_registered_at": sn.registered_at,
        "owner_hotkey": sn.owner_hotkey,
        "owner_coldkey": sn.owner_coldkey,
        "block": state.block,
        "tempo": int(hp["tempo"]),
        "last_step": sn.last_epoch_block,
        "blocks_since_last_step": state.block - sn.last_epoch_block,
        "subnet_emission": 0,
        "alpha_in": sn.alpha_in,
        "alpha_out": sum(alpha),
        "tao_in": sn.tao_in,
        "alpha_out_emission": 0,
        "alpha_in_emission": 0,
        "tao_in_emission": 0,
        "pending_alpha_emission": sn.pending_emission,
        "pending_root_emission": 0,
        "subnet_volume": 0,
        "moving_price": {"bits": price_rao(sn) * I96F32_ONE // 10**9},
        **{k: hp[k] for k in _HP_IN_METAGRAPH},
        "num_uids": len(ns),
        "max_uids": int(hp["max_allowed_uids"]),
        "burn": int(hp["burn"]),
        "registration_allowed": bool(hp["registration_allowed"]),
        "pow_registration_allowed": False,
        "hotkeys": [x.hotkey for x in ns],
        "coldkeys": [x.coldkey for x in ns],
        "identities": [None] * len(ns),
        "axons": [x.axon or EMPTY_AXON for x in ns],
        "active": out.active.tolist(),
        "validator_permit": out.permit.tolist(),
        "pruning_score": u16["pruning"],
        "last_update": [x.last_update for x in ns],
        "emission": out.emission.tolist(),
        "dividends": u16["dividends"],
        "incentives": u16["incentive"],
        "consensus": u16["consensus"],
        "trust": u16["trust"],
        "rank": u16["rank"],
        "block_at_registration": [x.registered_at for x in ns],
        "alpha_stake": alpha,
        "tao_stake": [0] * len(ns),
        "total_stake": alpha,
        "tao_dividends_per_hotkey": [],
        "alpha_dividends_per_hotkey": [],
    }


def neuron_lite(state: ChainState, sn: Subnet, uid: int) -> dict:
    x, out = sn.neurons[uid], sn.out
    return {
        "hotkey": x.hotkey,
        "coldkey": x.coldkey,
        "uid": uid,
        "netuid": sn.netuid,
        "active": bool(out.active[uid]),
        "axon_info": x.axon or EMPTY_AXON,
        "prometheus_info": None,
        "stake": [(x.coldkey, state.alpha_of(sn.netuid, x.hotkey))],
        "rank": int(out.u16["rank"][uid]),
        "emission": int(out.emission[uid]),
        "incentive": int(out.u16["incentive"][uid]),
        "consensus": int(out.u16["consensus"][uid]),
        "trust": int(out.u16["trust"][uid]),
        "validator_trust": int(out.u16["validator_trust"][uid]),
        "dividends": int(out.u16["dividends"][uid]),
        "last_update": x.last_update,
        "validator_permit": bool(out.permit[uid]),
        "pruning_score": int(out.u16["pruning"][uid]),
    }
