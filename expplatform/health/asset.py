"""`serving/experiment_health_pages`: the health pages, rebuilt by every run from the serving copy.

Downstream of the serving copy in the lineage, so every run that publishes the marts refreshes the
pages people open (served by `make run` next to the Dagster UI, expplatform/health/server.py). It
reads only the serving copy, never the warehouse, so it needs no warehouse slot.
"""

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from expplatform import catalog
from expplatform.health.links import page_url
from expplatform.health.page import write_health_pages
from expplatform.resources import ServingResource


def build_health_pages_asset() -> AssetsDefinition:
    """The asset writing index.html and one page per experiment into EXPPLATFORM_PAGES_DIR."""

    @multi_asset(
        name="write_health_pages",
        specs=[
            AssetSpec(
                key=catalog.HEALTH_PAGES_KEY,
                deps=[catalog.SERVING_KEY],
                group_name="serving",
                kinds={"html", "python"},
                owners=["team:experimentation-data"],
                description="The experiment health pages (EXPPLATFORM_PAGES_DIR): per experiment, "
                "the sample-ratio banner, allocation per arm over time, observed share vs "
                "expected weight with the daily status, the per-tier test and the latest "
                "data-quality results, as self-contained HTML. Links are in the metadata.",
            )
        ],
    )
    def write_pages(context: AssetExecutionContext, serving: ServingResource) -> MaterializeResult:
        written = write_health_pages(serving.path, serving.pages)
        context.log.info(f"wrote {len(written)} page(s) to {serving.pages}")
        metadata: dict[str, object] = {
            "index": MetadataValue.url(page_url(serving.pages_url)),
            "pages": MetadataValue.int(len(written) - 1),
            "folder": MetadataValue.path(str(serving.pages)),
        }
        for path in written[1:]:
            metadata[f"page__{path.stem.replace('-', '_')}"] = MetadataValue.url(
                f"{serving.pages_url.rstrip('/')}/experiments/{path.name}"
            )
        return MaterializeResult(asset_key=catalog.HEALTH_PAGES_KEY, metadata=metadata)

    return write_pages
