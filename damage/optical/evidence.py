"""Per-building evidence of damage: array code over the whole grid, one value per footprint.

Each feature is measured on the footprint and, where it says so, on a *ring* around it
(the band between the outline and the outline grown by ``ring_width``, without the
footprint itself; other buildings do not take part, so a building's evidence does not
depend on which other footprints are assessed with it):

``ssim_loss``
    One minus the structural similarity of the luminance (the band mean; noise-corrected,
    see :func:`damage.optical.metrics.ssim`), averaged over the footprint, the smallest over whole-pixel displacements of the
    after image up to ``max_shift`` px: the building's own best alignment, which copes
    with local misregistration and parallax that a scene-wide shift leaves.
``ssim_excess``
    ``ssim_loss`` as a loss of similarity on a log scale, ``-log(1 - ssim_loss)``,
    minus the scene's typical structural change without damage (see
    :func:`scene_typical`): how much less similar this building is than the scene's
    steady parts, so that pairs with more parallax or seasonal change (where
    everything changes a little) are not called damaged.
``colour_excess``
    Log ratio of ``colour_change`` to the scene's typical colour difference.
``colour_change``
    Mean absolute difference of the bands (as a share of the before epoch's robust
    range), the smallest over the same displacements.
``ssim_contrast``, ``colour_contrast``
    The same on the footprint minus on its ring: a change of the building itself,
    not of the whole neighbourhood (season, haze, view angle).
``ring_ssim_loss``, ``ring_colour_change``
    Debris, scorch, water and mud around the building.
``edge_change``
    Log ratio of the mean gradient magnitude after to before: rubble adds edges,
    a flattened or burned-out building loses them.
``edge_excess``
    ``edge_change`` minus the scene's typical edge change (a sharper or blurrier
    sensor changes every edge).
``lightness_change``, ``red_change``, ``yellow_change``
    Mean change of CIELAB L*, a* and b* over the footprint (the after epoch
    normalised to the before's radiometry): charred roofs darken, ash greys, mud and
    water change hue.
``lightness_excess``
    ``lightness_change`` minus the scene's typical lightness change.
``ring_colour_excess``
    Log ratio of ``ring_colour_change`` to the scene's typical colour difference: water,
    mud, ash or scorch around the building, beyond what the whole scene changed by.
``ring_edge_change``
    ``edge_change`` on the ring: debris scattered around adds edges, water and mud
    that cover a yard take them away.
``roof_delta_e``, ``ring_delta_e``
    CIELAB ΔE between the before and after mean colour of the footprint (of its ring):
    a roof under mud, ash or water changes colour as a whole, which a per-pixel
    difference of a textured roof hides.
``delta_e_excess``
    ``roof_delta_e`` minus the scene's typical ΔE of its steadiest blocks.
``ring_lightness_change``, ``chroma_change``
    Change of the ring's mean L*, and of the footprint's mean chroma C* (saturation):
    flood water and mud darken and desaturate, ash greys, fresh debris brightens.
``shadow_loss``
    Share of the ring's pixels in the building's shadow before (darker than half the
    roof's own L*) minus that share after: a building that fell casts no shadow.
``before_contrast``
    How far the before image of the footprint differs in colour from its ring
    (CIELAB ΔE of their means): near zero where nothing stands out from its
    surroundings, such as an empty lot under a footprint newer than the imagery.
``before_outline``
    Log ratio of the before image's mean gradient on the footprint's outline (a band
    across it, as wide as the building's own alignment allows) to that on its ring:
    a building has edges where its footprint says, an empty lot has none there
    (see :func:`outline_evidence`).

The scene's typical values (:func:`scene_typical`) are medians over the steadiest
building-sized blocks of the scene's context, fitted once per scene. Gradients and
CIELAB of both epochs are computed once per window (:func:`derived`) and shared by
both steps.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import ndimage

from damage.geo.zonal import Zones
from damage.grading import Calibration, block_means, log_change
from damage.optical.alignment import best_alignment
from damage.optical.metrics import SceneStats

__all__ = ["FEATURES", "SCENE_KEYS", "SHADOW_SHARE", "Derived", "derived", "building_evidence", "outline_evidence", "scene_typical", "lab",
           "no_building_before", "not_analysed_reasons", "EMPTY_CONTRAST", "EMPTY_OUTLINE", "CLOUD_REASON"]

#: Evidence columns, in output order.
FEATURES = (
    "ssim_excess",
    "colour_excess",
    "ssim_loss",
    "colour_change",
    "ssim_contrast",
    "colour_contrast",
    "ring_ssim_loss",
    "ring_colour_change",
    "edge_change",
    "edge_excess",
    "lightness_change",
    "lightness_excess",
    "red_change",
    "yellow_change",
    "before_contrast",
    "before_outline",
    "ring_colour_excess",
    "ring_edge_change",
    "roof_delta_e",
    "ring_delta_e",
    "delta_e_excess",
    "ring_lightness_change",
    "chroma_change",
    "shadow_loss",
)

#: A ring pixel is in the building's shadow when its L* is below this share of the roof's mean L*.
SHADOW_SHARE = 0.5


#: Added to colour differences (shares of the band range) before their ratio: flat, unchanged scenes stay finite.
_COLOUR_FLOOR = 0.01


def lab(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """CIELAB ``(3, rows, cols)`` of an image whose first three bands are red, green, blue.

    ``lo`` and ``hi`` map the image's values to [0, 1] sRGB (clipped). A single-band image is
    taken as grey. The conversion is scikit-image's ``rgb2lab`` (D65, 2 degree observer),
    compiled pixel by pixel (:func:`damage.optical._compiled.unit_lab`; within 2e-4 of it).
    """
    from damage.optical._compiled import unit_lab

    rgb = image[:3] if image.shape[0] >= 3 else np.repeat(image[:1], 3, axis=0)
    flat = np.ascontiguousarray(rgb.reshape(3, -1), dtype=np.float32)
    out = np.empty_like(flat)
    unit_lab(flat, float(lo), float(hi), out)
    return out.reshape((3, *image.shape[1:]))


def _gradient(luminance: np.ndarray) -> np.ndarray:
    return np.hypot(ndimage.sobel(luminance, 1), ndimage.sobel(luminance, 0)).astype(np.float32)


#: Gradient magnitude (share of the luminance range per pixel) added before edge ratios: flat areas stay finite.
_EDGE_FLOOR = 0.05


@dataclasses.dataclass(frozen=True)
class Derived:
    """Per-pixel maps of both epochs that the scene's typical change and the evidence share.

    Gradient magnitudes are shares of the luminance range per pixel; CIELAB maps the
    before epoch's robust range (fitted per scene) to [0, 1] sRGB.
    """

    grad_before: np.ndarray
    grad_after: np.ndarray
    lab_before: np.ndarray
    lab_after: np.ndarray


def derived(before: np.ndarray, after: np.ndarray, stats: SceneStats) -> Derived:
    """Gradients and CIELAB of both epochs (computed once per window)."""
    lrange = max(float(stats.luminance_range), 1e-6)
    lo = float(np.min(stats.lows)) if stats.lows is not None else 0.0
    hi = lo + float(np.max(stats.ranges))
    return Derived(_gradient(before.mean(axis=0)) / lrange, _gradient(after.mean(axis=0)) / lrange,
                   lab(before, lo, hi), lab(after, lo, hi))


#: Share of the scene's blocks, the least changed in structure, that the scene's typical change is taken over.
STEADY_SHARE = 0.25
#: What :func:`scene_typical` says of the whole scene's change (all its blocks), beside its steadiest blocks' change.
SCENE_KEYS = ("structure_median", "structure_p90", "colour_median", "colour_p90", "delta_e_median", "lightness_median")


def scene_typical(before: np.ndarray, after: np.ndarray, valid: np.ndarray, mvalid: np.ndarray, stats: SceneStats,
                  loss: np.ndarray, block: int = 16, tolerance: int = 1, maps: Derived | None = None) -> dict[str, float]:
    """The scene's typical change where nothing happened: over its steadiest blocks.

    The ``block`` x ``block`` blocks of the grid that are fully valid (``mvalid``),
    buildings and ground alike, are ranked by their mean structural change ``loss``
    (1 - SSIM); over the :data:`STEADY_SHARE` least changed (roads, fields, roofs that
    stood), the medians of the structural change (on the log scale of
    :func:`damage.grading.log_change`), colour difference, edge change and lightness
    change are what the two epochs differ by without damage: sensor, season, view.
    A scene where the tornado or the fire took most buildings and the trees keeps
    its roads and fields, so the reference does not rise with the share of damage.
    ``maps`` are :func:`derived` maps already computed for this window.
    """
    from damage.optical.metrics import METRICS

    blocks = block_means(loss, mvalid, block)
    if blocks.size == 0:
        return {"structure": 0.0, "colour": 0.0, "edge": 0.0, "lightness": 0.0, "delta_e": 0.0, **dict.fromkeys(SCENE_KEYS, 0.0),
                "blocks": 0}
    steady = blocks <= np.quantile(blocks, STEADY_SHARE)
    colour = block_means(METRICS["absdiff"](before, after, valid, tolerance=tolerance, stats=stats), mvalid, block)
    d = maps or derived(before, after, stats)
    gb, ga = block_means(d.grad_before, mvalid, block), block_means(d.grad_after, mvalid, block)
    dlab = np.stack([block_means(d.lab_after[i] - d.lab_before[i], mvalid, block) for i in range(3)])
    delta_e = np.sqrt((dlab**2).sum(axis=0))
    structure = log_change(blocks)
    return {
        "structure": float(np.median(structure[steady])),
        "colour": float(np.median(colour[steady])),
        "edge": float(np.median(np.log((ga + _EDGE_FLOOR) / (gb + _EDGE_FLOOR))[steady])),
        "lightness": float(np.median(dlab[0][steady])),
        "delta_e": float(np.median(delta_e[steady])),
        # how the whole scene changed (not only its steadiest part): what the scene's offset is predicted from
        "structure_median": float(np.median(structure)),
        "structure_p90": float(np.quantile(structure, 0.9)),
        "colour_median": float(np.median(colour)),
        "colour_p90": float(np.quantile(colour, 0.9)),
        "delta_e_median": float(np.median(delta_e)),
        "lightness_median": float(np.median(dlab[0])),
        "blocks": int(steady.sum()),
    }


def _lab_where(image: np.ndarray, idx: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """CIELAB ``(3, rows, cols)`` of ``image``, right at the flat pixel indices ``idx`` (repeats allowed) and
    undefined elsewhere: each pixel converted once, whether the zones' pixels are few (converted where
    they are) or many (rings of a dense city overlap several times: the whole window converted)."""
    flat = image.reshape(image.shape[0], -1)
    if idx.size >= flat.shape[1] // 2:
        return lab(image, lo, hi)
    unique = np.unique(idx)
    out = np.empty((3, flat.shape[1]), np.float32)
    out[:, unique] = lab(flat[:, unique][:, None, :], lo, hi)[:, 0, :]
    return out.reshape((3, *image.shape[1:]))


class _Means:
    """Means of maps over the valid pixels of each zone, from the zones' pixel lists (computed once).

    Given several zone sets (footprints and their rings), one pass over their pixels
    serves them all and every map; each set's means come back in its own array.
    """

    def __init__(self, valid: np.ndarray, *zone_sets: Zones) -> None:
        from damage.geo._compiled import span_pixels

        labels, idx, offset = [], [], 0
        self.sizes = [zs.n for zs in zone_sets]
        keep = np.ascontiguousarray(valid).ravel()
        for zs in zone_sets:  # each set's valid pixels, as Zones.pixels() lists them, in one compiled pass
            owner, row, start, end = (np.asarray(a, np.int64) for a in (zs.owner, zs.row, zs.start, zs.end))
            lab, ix = span_pixels(owner, row, start, end, zs.grid.shape[1], keep, offset)
            labels.append(lab)
            idx.append(ix)
            offset += zs.n
        self.labels, self.idx, self.n = np.concatenate(labels), np.concatenate(idx), offset
        self.count = np.bincount(self.labels, minlength=self.n)

    def __call__(self, values: np.ndarray) -> list[np.ndarray]:
        return self.means(values)[0]

    def means(self, *maps: np.ndarray) -> list[list[np.ndarray]]:
        """Each map's means over each zone set: ``[[set 0 means, set 1 means, ...] for each map]``.

        The maps (window-shaped) are read in one compiled pass over the zones' pixels
        (:func:`damage.geo._compiled.label_sums`, the sums ``numpy.bincount`` gives, to the bit).
        """
        from damage.geo._compiled import label_sums

        flat = [np.ascontiguousarray(m).ravel() for m in maps]
        if len({f.dtype for f in flat}) == 1:
            totals = label_sums(self.labels, self.idx, tuple(flat), self.n)
        else:  # maps of several types: one pass each
            totals = np.column_stack([label_sums(self.labels, self.idx, (f,), self.n)[:, 0] for f in flat])
        return [self._split(totals[:, k]) for k in range(len(flat))]

    def darker(self, values: np.ndarray, below: np.ndarray) -> np.ndarray:
        """Share of each zone of the last set whose ``values`` (a window-shaped map) are below ``below`` (one
        per zone of that set; NaN compares false), NaN for a zone without pixels."""
        from damage.geo._compiled import darker_counts

        first = self.n - self.sizes[-1]
        counts = darker_counts(self.labels, self.idx, np.ascontiguousarray(values).ravel(), np.asarray(below, np.float64),
                               first, self.n)
        return self._split(counts)[-1]

    def _split(self, total: np.ndarray) -> list[np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            means = np.where(self.count > 0, total / np.maximum(self.count, 1), np.nan)
        return np.split(means, np.cumsum(self.sizes)[:-1])


def outline_evidence(before: np.ndarray, valid: np.ndarray, outlines: Zones, rings: Zones, luminance_range: float,
                     gradient: np.ndarray | None = None) -> np.ndarray:
    """``before_outline`` of every footprint: log of the before image's mean gradient on its
    outline band over that on its ring (NaN where either has no valid pixel).

    Parameters
    ----------
    before : numpy.ndarray
        ``(bands, rows, cols)`` before epoch.
    valid : numpy.ndarray
        ``(rows, cols)`` bool pixels that count.
    outlines, rings : Zones
        Bands across the footprints' outlines and their rings (same order).
    luminance_range : float
        The scene's luminance range: gradients as shares of it.
    gradient : numpy.ndarray, optional
        The before luminance's gradient magnitude, when already computed.
    """
    if gradient is None:
        gradient = _gradient(before.mean(axis=0)) / max(float(luminance_range), 1e-6)
    on_outline, on_ring = _Means(valid, outlines, rings)(gradient)
    return np.log((on_outline + _EDGE_FLOOR) / (on_ring + _EDGE_FLOOR))


def building_evidence(
    before: np.ndarray,
    after: np.ndarray,
    valid: np.ndarray,
    footprints: Zones,
    rings: Zones,
    outlines: Zones,
    stats: SceneStats,
    reference: Calibration,
    max_shift: int = 2,
    sigma: float = 1.5,
    outline_valid: np.ndarray | None = None,
    search: str = "coarse",
) -> dict[str, np.ndarray]:
    """Every feature of :data:`FEATURES` for every footprint.

    Parameters
    ----------
    before, after : numpy.ndarray
        ``(bands, rows, cols)`` float32 epochs on one grid, the after one registered
        and normalised to the before.
    valid : numpy.ndarray
        ``(rows, cols)`` bool: pixels that count (already eroded by the context the
        metrics need and by ``max_shift``).
    footprints, rings : Zones
        The footprints' pixels and their rings' pixels (same order).
    outlines : Zones
        Bands across the footprints' outlines (same order), for ``before_outline``.
    stats : SceneStats
        Scene-wide scaling (robust ranges and noise), fitted once per scene.
    reference : Calibration
        The scene's typical structural change and colour difference, fitted once
        per scene.
    max_shift : int
        Largest displacement, in whole pixels, of each building's own alignment.
    sigma : float
        Gaussian window of the structural similarity.
    outline_valid : numpy.ndarray, optional
        ``(rows, cols)`` bool pixels that count for ``before_outline`` (a property of the
        before image alone: no erosion needed); ``valid`` when not given.
    search : {"full", "coarse"}
        How each building's displacements are searched
        (:func:`damage.optical.alignment.best_alignment`).

    Returns
    -------
    dict
        Feature name -> ``(n,)`` float64, NaN where a footprint has no valid pixel.
    """
    both = _Means(valid, footprints, rings)
    n = footprints.n
    # structure is compared on luminance (the band mean): a third of the work of every band,
    # with the noise of a mean of bands and the luminance's own range
    lum_stats = SceneStats(np.array([stats.luminance_range]), stats.luminance_range,
                           np.array([np.sqrt(np.mean(np.square(stats.noise_before)) / before.shape[0])]),
                           np.array([np.sqrt(np.mean(np.square(stats.noise_after)) / after.shape[0])]))
    lum_b, lum_a = before.mean(axis=0, keepdims=True), after.mean(axis=0, keepdims=True)
    best = best_alignment(lum_b[0], lum_a[0], before, after, lum_stats, np.asarray(stats.ranges, dtype=np.float64), sigma,
                          max_shift, both.labels, both.idx, n, search=search)

    lrange = max(float(stats.luminance_range), 1e-6)
    grad_before = _gradient(lum_b[0]) / lrange
    before_outline = outline_evidence(before, valid if outline_valid is None else outline_valid, outlines, rings, lrange,
                                      gradient=grad_before)
    # CIELAB is pointwise: converted where the zones' pixels are, not over the whole window
    lo = float(np.min(stats.lows)) if stats.lows is not None else 0.0
    hi = lo + float(np.max(stats.ranges))
    map_b, map_a = (_lab_where(image, both.idx, lo, hi) for image in (before, after))
    (edge_a, ring_edge_a), (edge_b, ring_edge_b), *lab_ba = both.means(_gradient(lum_a[0]) / lrange, grad_before,
                                                                        *map_b, *map_a)
    edge_change = np.log((edge_a + _EDGE_FLOOR) / (edge_b + _EDGE_FLOOR))
    ring_edge_change = np.log((ring_edge_a + _EDGE_FLOOR) / (ring_edge_b + _EDGE_FLOOR))
    lab_b, lab_a = lab_ba[:3], lab_ba[3:]
    d_lab = {name: lab_a[i][0] - lab_b[i][0] for i, name in enumerate(("lightness", "red", "yellow"))}
    before_contrast = np.sqrt(sum((lab_b[i][0] - lab_b[i][1]) ** 2 for i in range(3)))
    roof_delta_e = np.sqrt(sum((lab_a[i][0] - lab_b[i][0]) ** 2 for i in range(3)))
    ring_delta_e = np.sqrt(sum((lab_a[i][1] - lab_b[i][1]) ** 2 for i in range(3)))
    chroma_change = np.hypot(lab_a[1][0], lab_a[2][0]) - np.hypot(lab_b[1][0], lab_b[2][0])
    # the building's shadow: ring pixels darker than SHADOW_SHARE of the roof's own mean L*, in each epoch
    dark_b, dark_a = (both.darker(lab_map[0], SHADOW_SHARE * roof[0][0]) for lab_map, roof in ((map_b, lab_b), (map_a, lab_a)))
    shadow_loss = dark_b - dark_a
    typical_colour = reference.typical.get("colour", 0.0) + _COLOUR_FLOOR

    return {
        "ssim_excess": log_change(best["ssim"]) - reference.reference,
        "colour_excess": np.log((best["colour"] + _COLOUR_FLOOR) / (reference.typical.get("colour", 0.0) + _COLOUR_FLOOR)),
        "ssim_loss": best["ssim"],
        "colour_change": best["colour"],
        "ssim_contrast": best["ssim"] - best["ring_ssim"],
        "colour_contrast": best["colour"] - best["ring_colour"],
        "ring_ssim_loss": best["ring_ssim"],
        "ring_colour_change": best["ring_colour"],
        "edge_change": edge_change,
        "edge_excess": edge_change - reference.typical.get("edge", 0.0),
        "lightness_change": d_lab["lightness"],
        "lightness_excess": d_lab["lightness"] - reference.typical.get("lightness", 0.0),
        "red_change": d_lab["red"],
        "yellow_change": d_lab["yellow"],
        "before_contrast": before_contrast,
        "before_outline": before_outline,
        "ring_colour_excess": np.log((best["ring_colour"] + _COLOUR_FLOOR) / typical_colour),
        "ring_edge_change": ring_edge_change,
        "roof_delta_e": roof_delta_e,
        "ring_delta_e": ring_delta_e,
        "delta_e_excess": roof_delta_e - reference.typical.get("delta_e", 0.0),
        "ring_lightness_change": lab_a[0][1] - lab_b[0][1],
        "chroma_change": chroma_change,
        "shadow_loss": shadow_loss,
    }


#: No building before: the before image of the footprint differs from its ring by less than this
#: CIELAB ΔE (``before_contrast``) ...
EMPTY_CONTRAST = 8.0
#: ... and has fewer edges on its outline than on its ring (``before_outline`` below this).
#: Chosen on the xBD dev tiles, where every footprint had a building before, to call at most
#: 0.6 % of them empty (15 of 2,786 analysed; 1 of them damaged): hiding a damaged building
#: costs more than grading an empty lot. On generated towns it finds 7 of 40 empty lots; on the
#: Joplin sample it hides 4 destroyed houses and finds 1 of 6 empty lots, so the check is
#: off unless asked for (``building_check``).
EMPTY_OUTLINE = -0.1


def no_building_before(before_contrast: np.ndarray, before_outline: np.ndarray) -> np.ndarray:
    """Footprints whose before image shows no building: nothing stands out from the ring in
    colour and no edges follow the outline (an empty lot, a field, a car park)."""
    with np.errstate(invalid="ignore"):
        return (before_contrast < EMPTY_CONTRAST) & (before_outline < EMPTY_OUTLINE)


#: Share of a footprint under the cloud mask above which clouds can be the reason it is not analysed.
CLOUD_REASON = 0.1


def not_analysed_reasons(zs: Zones, covered: np.ndarray, cloudy: np.ndarray, valid_fraction: np.ndarray,
                         ev: dict[str, np.ndarray], min_valid_fraction: float, building_check: bool) -> np.ndarray:
    """Why each footprint is not analysed (one of :data:`damage.run.measure.REASONS`), or "" when it is.

    Too little valid imagery is "outside imagery" where the footprint has no pixel
    with data in both epochs, "cloud or shadow" where clouds or their shadows cover
    more than :data:`CLOUD_REASON` of it and more than the imagery's edge cuts off,
    and "partial coverage" otherwise
    (the edge of the imagery or of its nodata). A footprint with imagery enough is
    "no building before" where :func:`no_building_before` says so (``building_check``).
    """
    area = np.maximum(zs.area_pixels, 1e-9)
    on_image = zs.count(covered) / area
    clouded = zs.count(cloudy & covered) / area
    reason = np.full(zs.n, "", dtype=object)
    short = (valid_fraction < min_valid_fraction) | ~np.isfinite(ev["ssim_loss"]) | ~np.isfinite(ev["colour_change"])
    reason[short] = "partial coverage"
    # clouds are the reason where they cover more of the footprint than the edge of the imagery
    # takes (the rest of what is lost lies on the eroded rim of the cloud mask)
    reason[short & (clouded > CLOUD_REASON) & (clouded >= 1.0 - on_image)] = "cloud or shadow"
    reason[short & (on_image == 0)] = "outside imagery"
    if building_check:
        reason[~short & no_building_before(ev["before_contrast"], ev["before_outline"])] = "no building before"
    return reason
