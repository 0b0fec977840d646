from __future__ import annotations

import pytest

from orchestrator.carbon.boavizta import Boavizta
from orchestrator.carbon.derive import (
    CarbonInputError,
    HardwareSpec,
    check_declared,
    derive,
    normalize_cpu,
    zone,
)


def test_an_archetype_gives_boaviztas_figure_lifetime_and_power(boavizta: Boavizta) -> None:
    phone = derive(boavizta, HardwareSpec(kind="terminal", archetype="smartphone-default"))
    raw = boavizta.derive({"kind": "terminal", "archetype": "smartphone-default"})
    assert phone.embodied_kgco2e == raw["embodied_kgco2e"] > 0
    assert phone.lifetime_h == raw["lifetime_h"] > 0
    assert phone.provenance == "boavizta:smartphone-default"
    assert phone.power is not None and 0 < phone.power.idle_w < phone.power.busy_w


def test_components_override_the_archetype_and_show_in_the_provenance(
    boavizta: Boavizta,
) -> None:
    small = derive(boavizta, HardwareSpec(kind="server", cpu_cores=8, ram_gb=16))
    big = derive(
        boavizta,
        HardwareSpec(
            kind="server",
            cpu_name="Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz",
            cpu_units=2,
            ram_gb=384,
            ssd_gb=960,
        ),
    )
    assert big.embodied_kgco2e > small.embodied_kgco2e
    assert big.provenance == (
        "boavizta:platform_compute_medium(cpu=2xIntel Xeon Gold 6230R, ram=384GB, ssd=960GB)"
    )
    assert big.power is not None and big.power.busy_w > big.power.idle_w > 0


def test_a_cloud_instance_is_named_by_provider_and_type(boavizta: Boavizta) -> None:
    gpu = derive(boavizta, HardwareSpec(kind="cloud", provider="aws", instance="p3.2xlarge"))
    assert gpu.provenance == "boavizta:aws/p3.2xlarge"
    assert gpu.min_kgco2e <= gpu.embodied_kgco2e <= gpu.max_kgco2e


@pytest.mark.parametrize(
    ("spec", "field", "nearest"),
    [
        (HardwareSpec(kind="terminal", archetype="smartfone"), "carbon.archetype", "smartphone"),
        (
            HardwareSpec(kind="cloud", provider="aws", instance="p3.2xlarg"),
            "carbon.instance",
            "p3.2xlarge",
        ),
        (
            HardwareSpec(kind="cloud", provider="awz", instance="p3.2xlarge"),
            "carbon.provider",
            "aws",
        ),
        (
            HardwareSpec(kind="server", cpu_name="Xeon Gold 6231X"),
            "carbon.cpu_name",
            "Intel Xeon Gold",
        ),
    ],
)
def test_an_unknown_name_is_refused_with_the_nearest_known_ones(
    boavizta: Boavizta, spec: HardwareSpec, field: str, nearest: str
) -> None:
    with pytest.raises(CarbonInputError) as err:
        derive(boavizta, spec)
    assert err.value.field == field
    assert "nearest known: " in str(err.value) and nearest in str(err.value)


def test_zones_come_from_boaviztas_electricity_mix(boavizta: Boavizta) -> None:
    france, germany = zone(boavizta, "FRA"), zone(boavizta, "deu")
    assert (france.name, germany.name) == ("France", "Germany")
    assert 0 < france.gco2_per_kwh < germany.gco2_per_kwh
    with pytest.raises(CarbonInputError, match="unknown grid zone 'Frnace'; nearest known: France"):
        zone(boavizta, "Frnace")


def test_implausible_declared_figures_are_refused_naming_the_bounds() -> None:
    with pytest.raises(CarbonInputError, match="expected 0 to 500 kgCO2e for tier device"):
        check_declared("device", 10_000.0, None, None)
    with pytest.raises(CarbonInputError, match="lifetime_h: 5 is not plausible"):
        check_declared("edge", 100.0, 5.0, None)
    with pytest.raises(CarbonInputError, match="grid_gco2_per_kwh"):
        check_declared("cloud", None, None, 5000.0)
    check_declared("cloud", 2500.0, 43800.0, 40.0)


def test_cpu_names_are_compared_without_trademarks_and_clocks() -> None:
    assert normalize_cpu("Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz") == "intel xeon gold 6230r"
    assert normalize_cpu("AMD EPYC 7B13 64-Core Processor") == "amd epyc 7b13"
