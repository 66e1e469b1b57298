"""Subnet hyperparameters of the local chain: names, defaults, storage items and setters.

One table per view the SDK has of a hyperparameter: the `get_subnet_hyperparams_v3` list (name and
value variant), the storage item a scalar read queries, and the `AdminUtils` setter that changes
it (with whether the subnet owner may call it, or only root via `Sudo.sudo`). Values are kept raw,
in chain units: u16 fractions, per-million, rao, blocks.
"""

from __future__ import annotations

from typing import Any

RAO = 10**9
U16_MAX = 65535
U64F64_ONE = 2**64

# name -> default raw value. Defaults are subtensor's for a new subnet, except the local-friendly
# ones the genesis file overrides (tempo, rate limit, immunity, commit-reveal).
DEFAULTS: dict[str, Any] = {
    "rho": 10,
    "kappa": 32767,
    "immunity_period": 5000,
    "min_allowed_weights": 1,
    "max_weights_limit": U16_MAX,
    "tempo": 360,
    "min_difficulty": 10_000_000,
    "max_difficulty": 2**64 // 4,
    "weights_version": 0,
    "weights_rate_limit": 100,
    "adjustment_interval": 100,
    "activity_cutoff": 5000,
    "registration_allowed": True,
    "target_regs_per_interval": 2,
    "min_burn": 500_000,
    "max_burn": 100 * RAO,
    "burn": RAO,
    "burn_half_life": 360,
    "burn_increase_mult": U64F64_ONE,
    "bonds_moving_avg": 900_000,
    "bonds_penalty": U16_MAX,
    "max_regs_per_block": 1,
    "serving_rate_limit": 50,
    "max_validators": 64,
    "max_allowed_uids": 256,
    "adjustment_alpha": 0,
    "difficulty": 10_000_000,
    "commit_reveal_period": 1,
    "commit_reveal_weights_enabled": False,
    "alpha_high": 58982,
    "alpha_low": 45875,
    "liquid_alpha_enabled": False,
    "alpha_sigmoid_steepness": 1000,
    "yuma3_enabled": True,
    "transfers_enabled": True,
    "bonds_reset_enabled": False,
    "owner_cut_enabled": True,
    "owner_cut_auto_lock_enabled": False,
    "collateral_lock_share": 0,
    "weights_min_stake": 0,  # StakeThreshold (global on subtensor; per subnet here), rao
    "min_non_immune_uids": 10,
    "activity_cutoff_factor": 13_889,
}

# Values the genesis file gives in TAO; stored in rao.
TAO_VALUED = {"burn", "min_burn", "max_burn", "weights_min_stake"}

# `get_subnet_hyperparams_v3` order and value variant (default variant U16).
V3_NAMES = (
    "rho", "kappa", "immunity_period", "min_allowed_weights", "max_weights_limit", "tempo",
    "min_difficulty", "max_difficulty", "weights_version", "weights_rate_limit",
    "adjustment_interval", "activity_cutoff", "registration_allowed", "target_regs_per_interval",
    "min_burn", "max_burn", "burn_half_life", "burn_increase_mult", "bonds_moving_avg",
    "max_regs_per_block", "serving_rate_limit", "max_validators", "adjustment_alpha",
    "difficulty", "commit_reveal_period", "commit_reveal_weights_enabled", "alpha_high",
    "alpha_low", "liquid_alpha_enabled", "alpha_sigmoid_steepness", "yuma_version",
    "subnet_is_active", "transfers_enabled", "bonds_reset_enabled", "user_liquidity_enabled",
    "owner_cut_enabled", "owner_cut_auto_lock_enabled",
)  # fmt: skip
V3_TAGS = {
    **dict.fromkeys(
        (
            "registration_allowed",
            "commit_reveal_weights_enabled",
            "liquid_alpha_enabled",
            "subnet_is_active",
            "transfers_enabled",
            "bonds_reset_enabled",
            "user_liquidity_enabled",
            "owner_cut_enabled",
            "owner_cut_auto_lock_enabled",
        ),
        "Bool",
    ),  # fmt: skip
    **dict.fromkeys(
        (
            "weights_version",
            "weights_rate_limit",
            "bonds_moving_avg",
            "serving_rate_limit",
            "commit_reveal_period",
            "min_difficulty",
            "max_difficulty",
            "difficulty",
            "adjustment_alpha",
        ),
        "U64",
    ),  # fmt: skip
    "min_burn": "TaoBalance",
    "max_burn": "TaoBalance",
    "alpha_sigmoid_steepness": "I32F32",
    "burn_increase_mult": "U64F64",
}

# SubtensorModule storage item (keyed by netuid) -> hyperparameter name.
STORAGE_ITEMS = {
    "Tempo": "tempo",
    "Kappa": "kappa",
    "Rho": "rho",
    "ImmunityPeriod": "immunity_period",
    "MinAllowedWeights": "min_allowed_weights",
    "MaxWeightsLimit": "max_weights_limit",
    "WeightsSetRateLimit": "weights_rate_limit",
    "WeightsVersionKey": "weights_version",
    "CommitRevealWeightsEnabled": "commit_reveal_weights_enabled",
    "RevealPeriodEpochs": "commit_reveal_period",
    "MaxAllowedUids": "max_allowed_uids",
    "MaxAllowedValidators": "max_validators",
    "ActivityCutoff": "activity_cutoff",
    "NetworkRegistrationAllowed": "registration_allowed",
    "MinBurn": "min_burn",
    "MaxBurn": "max_burn",
    "Burn": "burn",
    "ServingRateLimit": "serving_rate_limit",
    "BondsMovingAverage": "bonds_moving_avg",
    "BondsPenalty": "bonds_penalty",
    "CollateralLockShare": "collateral_lock_share",
    "Yuma3On": "yuma3_enabled",
    "LiquidAlphaOn": "liquid_alpha_enabled",
    "AlphaSigmoidSteepness": "alpha_sigmoid_steepness",
    "MaxRegistrationsPerBlock": "max_regs_per_block",
    "TargetRegistrationsPerInterval": "target_regs_per_interval",
    "AdjustmentInterval": "adjustment_interval",
    "AdjustmentAlpha": "adjustment_alpha",
    "Difficulty": "difficulty",
    "MinDifficulty": "min_difficulty",
    "MaxDifficulty": "max_difficulty",
    "TransfersEnabled": "transfers_enabled",
    "BondsResetOn": "bonds_reset_enabled",
    "OwnerCutEnabled": "owner_cut_enabled",
    "BurnHalfLife": "burn_half_life",
    "BurnIncreaseMult": "burn_increase_mult",
    "StakeThreshold": "weights_min_stake",
    "ActivityCutoffFactorMilli": "activity_cutoff_factor",
}

# AdminUtils setter -> (hyperparameter, owner may call it). Others need root (Sudo.sudo).
SETTERS: dict[str, tuple[str, bool]] = {
    "sudo_set_tempo": ("tempo", True),
    "sudo_set_immunity_period": ("immunity_period", True),
    "sudo_set_min_allowed_weights": ("min_allowed_weights", True),
    "sudo_set_weights_version_key": ("weights_version", True),
    "sudo_set_min_burn": ("min_burn", True),
    "sudo_set_max_burn": ("max_burn", True),
    "sudo_set_bonds_moving_average": ("bonds_moving_avg", True),
    "sudo_set_bonds_penalty": ("bonds_penalty", True),
    "sudo_set_serving_rate_limit": ("serving_rate_limit", True),
    "sudo_set_commit_reveal_weights_interval": ("commit_reveal_period", True),
    "sudo_set_max_allowed_uids": ("max_allowed_uids", True),
    "sudo_set_commit_reveal_weights_enabled": ("commit_reveal_weights_enabled", True),
    "sudo_set_liquid_alpha_enabled": ("liquid_alpha_enabled", True),
    "sudo_set_network_registration_allowed": ("registration_allowed", True),
    "sudo_set_yuma3_enabled": ("yuma3_enabled", True),
    "sudo_set_rho": ("rho", True),
    "sudo_set_alpha_sigmoid_steepness": ("alpha_sigmoid_steepness", True),
    "sudo_set_bonds_reset_enabled": ("bonds_reset_enabled", True),
    "sudo_set_toggle_transfer": ("transfers_enabled", True),
    "sudo_set_owner_cut_enabled": ("owner_cut_enabled", True),
    "sudo_set_activity_cutoff_factor": ("activity_cutoff_factor", True),
    "sudo_set_collateral_lock_share": ("collateral_lock_share", True),
    "sudo_set_kappa": ("kappa", False),
    "sudo_set_weights_set_rate_limit": ("weights_rate_limit", False),
    "sudo_set_max_weight_limit": ("max_weights_limit", False),
    "sudo_set_max_allowed_validators": ("max_validators", False),
    "sudo_set_activity_cutoff": ("activity_cutoff", False),
    "sudo_set_max_registrations_per_block": ("max_regs_per_block", False),
    "sudo_set_target_registrations_per_interval": ("target_regs_per_interval", False),
    "sudo_set_adjustment_interval": ("adjustment_interval", False),
    "sudo_set_adjustment_alpha": ("adjustment_alpha", False),
    "sudo_set_difficulty": ("difficulty", False),
    "sudo_set_stake_threshold": ("weights_min_stake", False),
    "sudo_set_burn": ("burn", False),
}

# Owner-settable bounds subtensor enforces (root bypasses them): name -> (min, max).
OWNER_BOUNDS = {
    "tempo": (360, 50_400),
    "bonds_moving_avg": (0, 975_000),
    "alpha_sigmoid_steepness": (0, 32767),
    "activity_cutoff_factor": (1_000, 50_000),
}


def coerce(name: str, value: Any) -> Any:
    """A setter argument in the type the hyperparameter stores ({"bits": x} unwraps to x)."""
    if isinstance(value, dict) and set(value) == {"bits"}:
        value = value["bits"]
    if isinstance(DEFAULTS[name], bool):
        if isinstance(value, str):
            return value.strip().lower() in ("1", "true", "yes", "on")
        return bool(value)
    return int(value)


def v3_list(hp: dict[str, Any], *, active: bool) -> list[dict]:
    """The runtime `SubnetHyperparamsV3` list: `[{"name", "value": {Variant: payload}}]`."""
    view = dict(hp, yuma_version=3 if hp["yuma3_enabled"] else 2, subnet_is_active=active)
    view["user_liquidity_enabled"] = False
    out = []
    for name in V3_NAMES:
        tag = V3_TAGS.get(name, "U16")
        value = view[name]
        if tag == "I32F32":
            value = {"bits": int(value) << 32}
        elif tag == "U64F64":
            value = {"bits": int(value)}
        elif tag != "Bool":
            value = int(value)
        out.append({"name": name, "value": {tag: value}})
    return out
