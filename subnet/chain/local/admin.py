"""Hyperparameter setters (`AdminUtils.*`) with owner or root origin, and `Sudo.sudo`.

The owner may call owner-settable setters within subtensor's bounds; everything else needs root,
which on the local chain is the genesis sudo key through `Sudo.sudo`. A failed inner call does not
fail the sudo extrinsic: it is reported in `Sudo.Sudid{sudo_result: {"Err": ...}}` as on subtensor.
"""

from __future__ import annotations

from collections.abc import Callable

from subnet.chain.local.calls import ComposedCall, DispatchError, dispatch_error_payload, event
from subnet.chain.local.hparams import OWNER_BOUNDS, SETTERS, U16_MAX, coerce
from subnet.chain.local.state import ChainState
from subnet.chain.local.subnets import require_subnet

Dispatch = Callable[[str, ComposedCall, bool], list[dict]]


def set_hparam(state: ChainState, signer: str, fn: str, p: dict, *, root: bool) -> list[dict]:
    name, owner_ok = SETTERS[fn]
    sn = require_subnet(state, p.get("netuid"))
    if not root:
        if not owner_ok:
            raise DispatchError("BadOrigin", f"{fn} needs root (Sudo.sudo from the sudo key)")
        if signer != sn.owner_coldkey:
            raise DispatchError("BadOrigin", "only the subnet owner coldkey may set this")
    args = [v for k, v in p.items() if k != "netuid"]
    if len(args) != 1:
        raise DispatchError("InvalidValue", f"{fn} takes netuid and one value")
    value = coerce(name, args[0])
    if not root and name in OWNER_BOUNDS:
        low, high = OWNER_BOUNDS[name]
        if not low <= int(value) <= high:
            error = "TempoOutOfBounds" if name == "tempo" else "ValueNotInBounds"
            raise DispatchError(error, f"{name} must be in {low}..{high}")
    _check(sn, name, value)
    sn.hparams[name] = value
    if name == "activity_cutoff_factor":
        sn.hparams["activity_cutoff"] = value * int(sn.hparams["tempo"]) // 1000
    state.touch("subnet", sn.netuid)
    return [event("AdminUtils", "HyperparameterSet", {"netuid": sn.netuid, "name": name})]


def _check(sn, name: str, value) -> None:
    """Value checks subtensor applies to every origin."""
    if name in ("kappa", "max_weights_limit", "alpha_low", "alpha_high", "bonds_penalty"):
        if not 0 <= int(value) <= U16_MAX:
            raise DispatchError("InvalidValue", f"{name} is a u16")
    if name == "max_allowed_uids" and int(value) < len(sn.neurons):
        raise DispatchError("MaxAllowedUIdsLessThanCurrentUIds")
    if name == "max_validators" and int(value) > int(sn.hparams["max_allowed_uids"]):
        raise DispatchError("MaxValidatorsLargerThanMaxUIds")
    if name == "tempo" and int(value) <= 0:
        raise DispatchError("TempoOutOfBounds")


def set_alpha_values(state: ChainState, signer: str, p: dict, *, root: bool) -> list[dict]:
    sn = require_subnet(state, p.get("netuid"))
    if not root and signer != sn.owner_coldkey:
        raise DispatchError("BadOrigin")
    low, high = int(p["alpha_low"]), int(p["alpha_high"])
    if not 1638 <= low <= high <= U16_MAX:
        raise DispatchError("InvalidValue", "need 1638 <= alpha_low <= alpha_high <= 65535")
    sn.hparams["alpha_low"], sn.hparams["alpha_high"] = low, high
    state.touch("subnet", sn.netuid)
    return [event("AdminUtils", "HyperparameterSet", {"netuid": sn.netuid, "name": "alpha"})]


def sudo(sudo_key: str, signer: str, p: dict, dispatch: Dispatch) -> list[dict]:
    if signer != sudo_key:
        raise DispatchError("RequireSudo")
    inner = ComposedCall.from_plain(p.get("call"))
    try:
        events = dispatch(signer, inner, True)
    except DispatchError as err:
        return [event("Sudo", "Sudid", {"sudo_result": {"Err": dispatch_error_payload(err.name)}})]
    return [*events, event("Sudo", "Sudid", {"sudo_result": {"Ok": None}})]
