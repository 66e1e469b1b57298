"""set_weights / set_mechanism_weights with subtensor's checks, in `do_set_weights`'s order.

Order (pallets/subtensor/src/subnets/weights.rs): commit-reveal off, equal lengths, subnet
exists, not more uids than the subnet has, hotkey registered, minimum stake, version key, rate
limit, validator permit, duplicates, uid validity, minimum number of weights, max weight limit.
Stored rows are max-upscaled to u16 (`round(w * 65535 / max w)`), explicit zeros kept.
"""

from __future__ import annotations

from subnet.chain.local.calls import DispatchError, event
from subnet.chain.local.hparams import U16_MAX
from subnet.chain.local.state import ChainState
from subnet.chain.local.subnets import require_subnet

MAX_MECHANISMS = 1  # mechanism 0 only on the local chain


def set_weights(state: ChainState, hotkey: str, p: dict) -> list[dict]:
    mecid = int(p.get("mecid", 0))
    netuid = int(p["netuid"])
    dests, values = p["dests"], p["weights"]
    if not isinstance(dests, list) or not isinstance(values, list):
        raise DispatchError("WeightVecNotEqualSize", "dests and weights must be lists")
    dests = [int(d) for d in dests]
    values = [int(v) for v in values]
    sn = require_subnet(state, netuid)
    hp = sn.hparams
    if hp["commit_reveal_weights_enabled"]:
        raise DispatchError("CommitRevealEnabled")
    if len(dests) != len(values):
        raise DispatchError("WeightVecNotEqualSize")
    if mecid >= MAX_MECHANISMS:
        raise DispatchError("MechanismDoesNotExist")
    n = len(sn.neurons)
    if len(dests) > n:
        raise DispatchError("UidsLengthExceedUidsInSubNet")
    uid = sn.uids.get(hotkey)
    if uid is None:
        raise DispatchError("HotKeyNotRegisteredInSubNet")
    if state.alpha_of(netuid, hotkey) < int(hp["weights_min_stake"]):
        raise DispatchError("NotEnoughStakeToSetWeights")
    if int(p.get("version_key", 0)) < int(hp["weights_version"]):
        raise DispatchError("IncorrectWeightVersionKey")
    neuron = sn.neurons[uid]
    limit = int(hp["weights_rate_limit"])
    if neuron.last_update and state.block - neuron.last_update < limit:
        raise DispatchError("SettingWeightsTooFast")
    self_weight = dests == [uid]
    if not self_weight and not bool(sn.out.permit[uid]):
        raise DispatchError("NeuronNoValidatorPermit")
    if len(set(dests)) != len(dests):
        raise DispatchError("DuplicateUids")
    if any(d < 0 or d >= n for d in dests) or any(v < 0 or v > U16_MAX for v in values):
        raise DispatchError("UidVecContainInvalidOne")
    if not self_weight and len(dests) < min(int(hp["min_allowed_weights"]), n):
        raise DispatchError("WeightVecLengthIsLow")
    top = max(values, default=0)
    total = sum(values)
    limit_u16 = int(hp["max_weights_limit"])
    if not self_weight and limit_u16 < U16_MAX and total and top * U16_MAX > limit_u16 * total:
        raise DispatchError("MaxWeightExceeded")
    row = sorted(zip(dests, values, strict=True))
    if top:
        row = [(d, (v * U16_MAX + top // 2) // top) for d, v in row]
    neuron.weights = row
    neuron.last_update = state.block
    state.touch("neuron", (netuid, uid))
    return [event("SubtensorModule", "WeightsSet", [netuid + mecid * 4096, uid])]
