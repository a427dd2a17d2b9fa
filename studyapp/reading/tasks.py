"""Background work for reader studies: building the blinded model of each item."""

from __future__ import annotations

from studyapp.jobs.registry import JobContext, register

from . import services
from .models import Item


@register("reading.prepare_items")
def prepare_items(context: JobContext, item_ids: list[int]) -> dict:
    """Normalise and write the blinded GLB of each item (idempotent: rewrites the file)."""
    items = Item.objects.filter(pk__in=item_ids).select_related("reconstruction")
    total = max(1, len(item_ids))
    sizes = []
    for done, item in enumerate(items, start=1):
        sizes.append(services.prepare_item_file(item).blinded_bytes)
        context.report(100 * done / total, f"{done} of {total} blinded models")
    return {"items": len(sizes), "max_bytes": max(sizes, default=0)}
