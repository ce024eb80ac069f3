"""The one region vocabulary shared by the atlas label table, the region metrics and the
scoring form.

Every region a Weeke item names (see ``shared/reference/weeke_score.md``) has a left and a right
label; the corpus callosum and the vermis are midline; CSF compartments carry no item. Label
indices are those of the default phantom atlas; other atlases map onto these region names
through a mapping table (``atlases/mappings/``).
"""

from __future__ import annotations

from dataclasses import dataclass

HEMISPHERES = ("left", "right", "midline")
TISSUES = ("csf", "cortical_gm", "wm", "deep_gm", "brainstem", "cerebellum")


@dataclass(frozen=True)
class Region:
    """One labelled structure: ``name`` is ``<region>_<hemisphere>`` (or ``<region>`` midline)."""

    index: int
    region: str
    hemisphere: str
    tissue: str
    weeke_item: str  # score item id this region informs ('' for none)

    @property
    def name(self) -> str:
        return self.region if self.hemisphere == "midline" else f"{self.region}_{self.hemisphere}"


# (region, tissue, weeke item, lateralised)
_REGION_SPECS: tuple[tuple[str, str, str, bool], ...] = (
    ("csf_extracerebral", "csf", "", False),
    ("lateral_ventricle", "csf", "", True),
    ("cortex_frontal", "cortical_gm", "wm_cortex", True),
    ("cortex_parietal", "cortical_gm", "wm_cortex", True),
    ("cortex_temporal", "cortical_gm", "wm_cortex", True),
    ("cortex_occipital", "cortical_gm", "wm_cortex", True),
    ("perirolandic_cortex", "cortical_gm", "gm_perirolandic", True),
    ("wm_frontal", "wm", "wm_white_matter", True),
    ("wm_parietal", "wm", "wm_white_matter", True),
    ("wm_temporal", "wm", "wm_white_matter", True),
    ("wm_occipital", "wm", "wm_white_matter", True),
    ("optic_radiation", "wm", "wm_optic_radiation", True),
    ("corpus_callosum", "wm", "wm_corpus_callosum", False),
    ("thalamus", "deep_gm", "gm_thalamus", True),
    ("caudate", "deep_gm", "gm_basal_ganglia", True),
    ("lentiform", "deep_gm", "gm_basal_ganglia", True),
    ("plic", "wm", "gm_plic", True),
    ("hippocampus", "cortical_gm", "gm_hippocampus", True),
    ("brainstem", "brainstem", "gm_brainstem", True),
    ("cerebellum", "cerebellum", "cb_cerebellum", True),
    ("vermis", "cerebellum", "cb_cerebellum", False),
)


def _build() -> tuple[Region, ...]:
    out: list[Region] = []
    index = 1
    for region, tissue, item, lateral in _REGION_SPECS:
        for hemi in ("left", "right") if lateral else ("midline",):
            out.append(Region(index, region, hemi, tissue, item))
            index += 1
    return tuple(out)


#: all labelled regions of the default atlas, in label-index order (0 is background)
REGIONS: tuple[Region, ...] = _build()
BY_NAME: dict[str, Region] = {r.name: r for r in REGIONS}
BY_INDEX: dict[int, Region] = {r.index: r for r in REGIONS}
REGION_NAMES: tuple[str, ...] = tuple(dict.fromkeys(r.region for r in REGIONS))


def label_index(region: str, hemisphere: str = "midline") -> int:
    """Label index of ``region`` in ``hemisphere`` ('left', 'right' or 'midline')."""
    name = region if hemisphere == "midline" else f"{region}_{hemisphere}"
    try:
        return BY_NAME[name].index
    except KeyError:
        raise KeyError(f"no region {name!r} in the vocabulary") from None


def indices_for(*, region: str | None = None, tissue: str | None = None,
                weeke_item: str | None = None, hemisphere: str | None = None) -> list[int]:
    """Label indices matching every given criterion."""
    return [
        r.index for r in REGIONS
        if (region is None or r.region == region)
        and (tissue is None or r.tissue == tissue)
        and (weeke_item is None or r.weeke_item == weeke_item)
        and (hemisphere is None or r.hemisphere == hemisphere)
    ]


def label_table_rows() -> list[dict[str, object]]:
    """Rows of the label table TSV (index, name, region, hemisphere, tissue, weeke_item)."""
    return [
        {"index": r.index, "name": r.name, "region": r.region, "hemisphere": r.hemisphere,
         "tissue": r.tissue, "weeke_item": r.weeke_item}
        for r in REGIONS
    ]
