"""Balances: withdrawals, transfers and the flat fee of a paying extrinsic."""

from __future__ import annotations

from subnet.chain.local.calls import DispatchError, event
from subnet.chain.local.genesis import Genesis
from subnet.chain.local.state import ChainState

# Calls subtensor dispatches with `Pays::No` (validators and miners must not need TAO to work).
FREE_CALLS = {
    ("SubtensorModule", "set_weights"),
    ("SubtensorModule", "set_mechanism_weights"),
    ("SubtensorModule", "serve_axon"),
    ("SubtensorModule", "serve_axon_tls"),
    ("Sudo", "sudo"),
}


def fee_for(module: str, function: str, genesis: Genesis) -> int:
    return 0 if (module, function) in FREE_CALLS else genesis.fee_rao


def withdraw(state: ChainState, who: str, rao: int, error: str) -> None:
    """Take `rao` from a free balance or fail with subtensor's `error` name."""
    if rao < 0 or state.balances.get(who, 0) < rao:
        raise DispatchError(error)
    state.balances[who] -= rao
    state.touch("account", who)


def charge_fee(state: ChainState, who: str, fee: int) -> int:
    """Charge what the account can pay of `fee` (the pool checked solvency on a real node)."""
    paid = min(fee, state.balances.get(who, 0))
    if paid:
        state.balances[who] -= paid
        state.touch("account", who)
    return paid


def transfer(
    state: ChainState, genesis: Genesis, signer: str, p: dict, *, keep_alive: bool
) -> list[dict]:
    dest, value = str(p["dest"]), int(p["value"])
    if value < 0:
        raise DispatchError("InsufficientBalance")
    free = state.balances.get(signer, 0)
    if free < value:
        raise DispatchError("InsufficientBalance")
    if keep_alive and free - value < genesis.existential_deposit_rao:
        raise DispatchError("InsufficientBalance", "keep-alive transfer would reap the sender")
    if state.balances.get(dest, 0) + value < genesis.existential_deposit_rao:
        raise DispatchError("ExistentialDeposit")
    state.balances[signer] = free - value
    state.touch("account", signer)
    state.add_balance(dest, value)
    return [event("Balances", "Transfer", {"from": signer, "to": dest, "amount": value})]
