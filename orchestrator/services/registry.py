"""Every service over one context: what the API keeps on its app state."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.services.artifacts import ArtifactsService
from orchestrator.services.audit import AuditService
from orchestrator.services.console import ConsoleService
from orchestrator.services.context import Context
from orchestrator.services.deployments import DeploymentsService
from orchestrator.services.devices import DevicesService
from orchestrator.services.events import EventsService
from orchestrator.services.health import HealthService
from orchestrator.services.links import LinksService
from orchestrator.services.models import CascadesService, ModelsService
from orchestrator.services.tokens import TokensService


@dataclass(frozen=True)
class Services:
    devices: DevicesService
    links: LinksService
    models: ModelsService
    cascades: CascadesService
    deployments: DeploymentsService
    tokens: TokensService
    artifacts: ArtifactsService
    audit: AuditService
    events: EventsService
    health: HealthService
    console: ConsoleService

    @classmethod
    def over(cls, ctx: Context) -> Services:
        return cls(
            devices=DevicesService(ctx),
            links=LinksService(ctx),
            models=ModelsService(ctx),
            cascades=CascadesService(ctx),
            deployments=DeploymentsService(ctx),
            tokens=TokensService(ctx),
            artifacts=ArtifactsService(ctx),
            audit=AuditService(ctx),
            events=EventsService(ctx),
            health=HealthService(ctx),
            console=ConsoleService(ctx),
        )
