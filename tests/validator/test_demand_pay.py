"""Pay follows demand: when users mostly ask for one expert, its miners earn most of the weight.

Four real miners (one per offline expert), the real validator loop and gateway, a skewed organic
load (mostly arithmetic) routed by the gate: each expert's share of the weight vector tracks the
share of user answers its miner served, with the floor (`demand_floor`) spread evenly on top.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import replace

import aiohttp

from subnet.localnet.users import PROMPTS
from subnet.validator.config import GatewayConfig
from subnet.validator.gateway import Gateway
from subnet.validator.router import RouterConfig
from tests.validator.helpers import make_validator, validator_config

KEY = "sk-test-demand"
MIX = {"math": 0.7, "code": 0.1, "general": 0.1, "data": 0.1}
USERS = 40


async def _served_by(gw: Gateway, http: aiohttp.ClientSession, prompt: str) -> int:
    body = {"model": "auto", "prompt": prompt, "max_tokens": 4, "temperature": 0}
    url = f"http://127.0.0.1:{gw.port}/v1/completions"
    async with http.post(url, json=body, headers={"Authorization": f"Bearer {KEY}"}) as r:
        assert r.status == 200, await r.text()
        return int(r.headers["X-Dmoe-Uid"])


def _prompt(rng: random.Random, domain: str) -> str:
    if domain == "math":  # arithmetic as a calculator's users type it
        return f"{rng.randint(2, 99)} {rng.choice('+-*')} {rng.randint(2, 99)} ="
    return rng.choice(PROMPTS[domain])


async def test_incentive_share_tracks_routed_demand(
    tmp_path, registry, by_domain, mwallets, signed, start_miner
):
    miners, expert_of_uid = [], {}
    for uid, domain in enumerate(("code", "math", "general", "data"), start=1):
        _, info = await start_miner(by_domain[domain], mwallets[uid - 1], uid=uid)
        miners.append(info)
        expert_of_uid[uid] = domain
    cfg = validator_config(tmp_path / "s.json", per_step=4)
    v = make_validator(replace(cfg, loop=replace(cfg.loop, probe_wait_s=60.0)), signed, registry)
    v.set_miners(miners)
    # No hedging and no exploration: the miner that answers is the one the gate's pick routed to.
    router = RouterConfig(explore=0.0, hedge_min_s=30.0, hedge_max_s=30.0)
    gw = Gateway(v, GatewayConfig(port=0, api_keys=(KEY,), verify_share=0.0, burst=USERS), router)
    await gw.start("127.0.0.1", 0)
    try:
        await v.step()  # evidence for every miner: each expert then has a pool to pay
        rng = random.Random(3)
        domains = rng.choices(list(MIX), weights=list(MIX.values()), k=USERS)
        prompts = [_prompt(rng, d) for d in domains]
        async with aiohttp.ClientSession() as http:
            served: Counter[int] = Counter()
            for lo in range(0, USERS, 8):
                uids = await asyncio.gather(
                    *(_served_by(gw, http, p) for p in prompts[lo : lo + 8])
                )
                served.update(uids)
        await v.step()
    finally:
        await gw.stop()

    weights = v.weight_vector()
    assert set(weights) == {1, 2, 3, 4}, weights  # every expert's miner is paid something
    floor = v.cfg.scoring.demand_floor
    for uid, domain in expert_of_uid.items():
        routed = served[uid] / USERS
        expected = floor / 4 + (1 - floor) * routed
        # Task prompts routed by the validator add a little demand of their own (a tenth of a
        # user request each): a few points at most.
        assert abs(weights[uid] - expected) <= 0.06, (domain, weights, served)
    # The skew shows: arithmetic is what users wanted, the gate sent it to the math expert, and
    # that expert's miner earns most.
    assert served.most_common(1)[0][0] == 2, served
    top = max(weights, key=weights.get)
    assert expert_of_uid[top] == "math" and weights[top] >= 0.4, (weights, served)
    assert min(weights.values()) >= floor / 4 * 0.9  # the floor keeps rare experts paid
