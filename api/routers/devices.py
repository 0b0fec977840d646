"""Devices: list, get, update, cordon, drain, delete."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import ControlPlaneDep, DeviceId, Operator
from api.schemas import DeviceUpdate, DeviceView

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("")
async def list_devices(cp: ControlPlaneDep, _: Operator) -> list[DeviceView]:
    return [DeviceView.model_validate(d) for d in await cp.device_views()]


@router.get("/{device_id}")
async def get_device(device_id: DeviceId, cp: ControlPlaneDep, _: Operator) -> DeviceView:
    return DeviceView.model_validate(await cp.device_view(device_id))


@router.patch("/{device_id}")
async def update_device(
    device_id: DeviceId, body: DeviceUpdate, cp: ControlPlaneDep, actor: Operator
) -> DeviceView:
    """Labels, power and carbon figures, battery capacity, compute and memory."""
    await cp.update_device(actor, device_id, body.model_dump(exclude_unset=True))
    return DeviceView.model_validate(await cp.device_view(device_id))


async def _set_state(cp: ControlPlaneDep, actor: str, device_id: str, state: str) -> DeviceView:
    await cp.set_device_state(actor, device_id, state)
    return DeviceView.model_validate(await cp.device_view(device_id))


@router.post("/{device_id}/cordon")
async def cordon(device_id: DeviceId, cp: ControlPlaneDep, actor: Operator) -> DeviceView:
    """Place nothing new here; what runs here is moved at the next re-solve."""
    return await _set_state(cp, actor, device_id, "cordoned")


@router.post("/{device_id}/drain")
async def drain(device_id: DeviceId, cp: ControlPlaneDep, actor: Operator) -> DeviceView:
    """Move everything off this device now (it may still be a source or sink)."""
    return await _set_state(cp, actor, device_id, "draining")


@router.post("/{device_id}/uncordon")
async def uncordon(device_id: DeviceId, cp: ControlPlaneDep, actor: Operator) -> DeviceView:
    return await _set_state(cp, actor, device_id, "active")


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_device(device_id: DeviceId, cp: ControlPlaneDep, actor: Operator) -> None:
    await cp.delete_device(actor, device_id)
