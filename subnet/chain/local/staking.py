"""Stake: add_stake / add_stake_limit / remove_stake through a constant-product TAO/alpha pool.

Each subnet has one pool (reserves `tao_in`, `alpha_in`, both starting at the genesis `pool_tao`,
so the price starts at 1.0). Buying alpha moves the price up, selling moves it down; no swap fee.
This is the "simple pool" of the local chain, not subtensor's concentrated-liquidity swap.
"""

from __future__ import annotations

from subnet.chain.local.accounts import withdraw
from subnet.chain.local.calls import DispatchError, event
from subnet.chain.local.genesis import Genesis
from subnet.chain.local.hparams import RAO
from subnet.chain.local.state import ChainState, Subnet
from subnet.chain.local.subnets import require_subnet


def quote_tao_for_alpha(sn: Subnet, tao: int) -> int:
    """Alpha rao bought by `tao` rao (x*y=k)."""
    if tao <= 0:
        return 0
    return sn.alpha_in - (sn.tao_in * sn.alpha_in) // (sn.tao_in + tao)


def quote_alpha_for_tao(sn: Subnet, alpha: int) -> int:
    if alpha <= 0:
        return 0
    return sn.tao_in - (sn.tao_in * sn.alpha_in) // (sn.alpha_in + alpha)


def price_rao(sn: Subnet) -> int:
    """Rao of TAO per 1 alpha (what `SwapRuntimeApi.current_alpha_price` returns)."""
    return sn.tao_in * RAO // sn.alpha_in if sn.alpha_in else RAO


def add_stake(
    state: ChainState,
    genesis: Genesis,
    signer: str,
    p: dict,
    *,
    limit_price: int | None = None,
) -> list[dict]:
    hotkey, tao = str(p["hotkey"]), int(p["amount_staked"])
    sn = require_subnet(state, p["netuid"])
    if tao < genesis.min_stake_rao:
        raise DispatchError("AmountTooLow")
    if state.balances.get(signer, 0) < tao:
        raise DispatchError("NotEnoughBalanceToStake")
    if hotkey not in state.owners:
        raise DispatchError("HotKeyAccountNotExists")
    alpha = quote_tao_for_alpha(sn, tao)
    if limit_price is not None:
        # Price after the swap must stay under the caller's limit (allow_partial=False).
        after = (sn.tao_in + tao) * RAO // max(sn.alpha_in - alpha, 1)
        if after > limit_price:
            raise DispatchError("SlippageTooHigh")
    withdraw(state, signer, tao, "NotEnoughBalanceToStake")
    sn.tao_in += tao
    sn.alpha_in -= alpha
    state.add_stake(hotkey, signer, sn.netuid, alpha)
    state.touch("subnet", sn.netuid)
    return [event("SubtensorModule", "StakeAdded", [signer, hotkey, tao, alpha, sn.netuid, 0])]


def add_stake_limit(state: ChainState, genesis: Genesis, signer: str, p: dict) -> list[dict]:
    if p.get("allow_partial"):
        raise DispatchError("IncorrectPartialFillAmount", "partial fills are not modelled")
    return add_stake(state, genesis, signer, p, limit_price=int(p["limit_price"]))


def remove_stake(state: ChainState, genesis: Genesis, signer: str, p: dict) -> list[dict]:
    hotkey, alpha = str(p["hotkey"]), int(p["amount_unstaked"])
    sn = require_subnet(state, p["netuid"])
    if alpha <= 0:
        raise DispatchError("AmountTooLow")
    held = state.stake.get((hotkey, signer, sn.netuid), 0)
    if held < alpha:
        raise DispatchError("NotEnoughStakeToWithdraw")
    tao = quote_alpha_for_tao(sn, alpha)
    if tao < genesis.min_stake_rao and alpha != held:
        raise DispatchError("AmountTooLow")
    sn.alpha_in += alpha
    sn.tao_in -= tao
    state.add_stake(hotkey, signer, sn.netuid, -alpha)
    state.add_balance(signer, tao)
    state.touch("subnet", sn.netuid)
    return [event("SubtensorModule", "StakeRemoved", [signer, hotkey, tao, alpha, sn.netuid, 0])]


def sim_swap_tao_for_alpha(sn: Subnet, tao: int) -> dict:
    alpha = quote_tao_for_alpha(sn, tao)
    ideal = tao * RAO // price_rao(sn) if price_rao(sn) else alpha
    return {
        "alpha_amount": alpha,
        "tao_amount": tao,
        "tao_fee": 0,
        "alpha_fee": 0,
        "tao_slippage": 0,
        "alpha_slippage": max(ideal - alpha, 0),
    }


def sim_swap_alpha_for_tao(sn: Subnet, alpha: int) -> dict:
    tao = quote_alpha_for_tao(sn, alpha)
    ideal = alpha * price_rao(sn) // RAO
    return {
        "alpha_amount": alpha,
        "tao_amount": tao,
        "tao_fee": 0,
        "alpha_fee": 0,
        "tao_slippage": max(ideal - tao, 0),
        "alpha_slippage": 0,
    }
