"""The owner's expert registry: file format, digest, publication on chain, validator-side checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subnet.engine.experts import DOMAINS
from subnet.owner import tools
from subnet.owner.registry import (
    Registry,
    RegistryError,
    build_from_dir,
    check_published,
    load,
    save,
)


def test_build_save_load_and_digest(tiny_experts, tmp_path):
    reg = build_from_dir(Path(tiny_experts["code"]).parent, version=3)
    assert {e.model_id for e in reg.experts} == {f"dmoe/tiny-{d}" for d in DOMAINS}
    path = tmp_path / "registry.json"
    save(reg, path)
    again = load(path)
    assert again == reg and again.digest() == reg.digest()
    assert len(reg.commitment()) < 384  # fits the Commitments pallet
    bumped = Registry(version=4, experts=reg.experts)
    assert bumped.digest() != reg.digest()


@pytest.mark.parametrize(
    "patch, needle",
    [
        ({"format": "other"}, "not a registry"),
        ({"version": 0}, "version"),
        ({"experts": []}, "1..256"),
        ({"experts": [{"model_id": "x"}]}, "needs model_id"),
        (
            {
                "experts": [
                    {"model_id": "x", "revision": "r", "weights_hash": "XYZ", "domains": ["a"]}
                ]
            },
            "hex",
        ),
    ],
)
def test_bad_registry_files_are_refused_with_the_fix(patch, needle, tmp_path):
    d = {
        "format": "dmoe-registry/1",
        "version": 1,
        "experts": [
            {"model_id": "m", "revision": "r", "weights_hash": "ab" * 32, "domains": ["code"]}
        ],
    } | patch
    path = tmp_path / "r.json"
    path.write_text(json.dumps(d))
    with pytest.raises(RegistryError, match=needle):
        load(path)


async def test_publish_and_check_against_the_chain(
    local_chain, chain_client, make_wallet, tiny_experts
):
    owner, stranger = make_wallet("reg-owner"), make_wallet("reg-stranger")
    for w in (owner, stranger):
        local_chain.fund(w.coldkeypub.ss58_address, 5000)
    netuid = await tools.create_subnet(chain_client, owner)
    await tools.start_subnet(chain_client, owner, netuid)
    reg = build_from_dir(Path(tiny_experts["code"]).parent, version=1)

    assert check_published(reg, await tools.published_registry(chain_client, netuid))[0] == "absent"
    with pytest.raises(tools.OwnerError, match="owner hotkey"):
        await tools.publish_registry(chain_client, stranger, netuid, reg)
    await tools.publish_registry(chain_client, owner, netuid, reg)
    status, why = check_published(reg, await tools.published_registry(chain_client, netuid))
    assert status == "ok", why

    # A validator holding an older or edited file is told to fetch the owner's current one.
    stale = Registry(version=2, experts=reg.experts[:1])
    status, why = check_published(stale, await tools.published_registry(chain_client, netuid))
    assert status == "mismatch" and "fetch the owner's current registry" in why


def test_validator_reference_set_is_restricted_to_the_registry(tiny_experts):
    from subnet.validator.verifier import ExpertRegistry

    refs = ExpertRegistry.load_dir(Path(tiny_experts["code"]).parent)
    reg = build_from_dir(Path(tiny_experts["code"]).parent)
    code = next(e for e in reg.experts if e.domains == ("code",))
    dropped = refs.restrict(frozenset({code.weights_hash}))
    assert sorted(dropped) == sorted(f"dmoe/tiny-{d}" for d in DOMAINS if d != "code")
    assert [c.model_id for c in refs.cards()] == ["dmoe/tiny-code"]
