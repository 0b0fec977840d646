"""Devices: list, get, update, cordon, drain, delete."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import DeviceId, DevicesDep, Operator
from api.schemas import DeviceUpdate, DeviceView

router = APIRouter(prefix="/devices", tags=["devices"])


@router.get("")
async def list_devices(devices: DevicesDep, _: Operator) -> list[DeviceView]:
    return [DeviceView.model_validate(d) for d in await devices.views()]


@router.get("/{device_id}")
async def get_device(device_id: DeviceId, devices: DevicesDep, _: Operator) -> DeviceView:
    return DeviceView.model_validate(await devices.view(device_id))


@router.patch("/{device_id}")
async def update_device(
    device_id: DeviceId, body: DeviceUpdate, devices: DevicesDep, actor: Operator
) -> DeviceView:
    """Labels, power and carbon figures, battery capacity, compute and memory."""
    changes = body.model_dump(exclude_unset=True)
    return DeviceView.model_validate(await devices.update(actor, device_id, changes))


@router.post("/{device_id}/cordon")
async def cordon(device_id: DeviceId, devices: DevicesDep, actor: Operator) -> DeviceView:
    """Place nothing new here; what runs here is moved at the next re-solve."""
    return DeviceView.model_validate(await devices.set_state(actor, device_id, "cordoned"))


@router.post("/{device_id}/drain")
async def drain(device_id: DeviceId, devices: DevicesDep, actor: Operator) -> DeviceView:
    """Move everything off this device now (it may still be a source or sink)."""
    return DeviceView.model_validate(await devices.set_state(actor, device_id, "draining"))


@router.post("/{device_id}/uncordon")
async def uncordon(device_id: DeviceId, devices: DevicesDep, actor: Operator) -> DeviceView:
    return DeviceView.model_validate(await devices.set_state(actor, device_id, "active"))


@router.post("/{device_id}/rekey")
async def rekey(device_id: DeviceId, devices: DevicesDep, actor: Operator) -> DeviceView:
    """Allow one re-enrollment of this device without its agent token (its agent lost its
    data directory, or the machine was replaced). Until then the current token works."""
    return DeviceView.model_validate(await devices.rekey(actor, device_id))


@router.delete("/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_device(device_id: DeviceId, devices: DevicesDep, actor: Operator) -> None:
    await devices.delete(actor, device_id)
